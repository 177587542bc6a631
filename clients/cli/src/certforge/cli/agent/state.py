"""The agent's state file: what it holds for each certificate, and how its last attempt went.

`certforge agent status` reads it (the running agent is not asked: the file answers even when
the agent is stopped or wedged). It is rewritten atomically after every change, 0600, and holds
no secret: ids, serials, dates, errors (API errors never carry the token) and, while a CSR
renewal is in flight, the idempotency key and CSR to retry it with (public data).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certforge.cli.agent.files import write_one

VERSION = 1


@dataclass
class Pending:
    """A request sent (or about to be) whose certificate is not installed yet: retried with
    the same idempotency key, so a lost answer never makes a second certificate."""

    idempotency_key: str
    csr: str | None = None
    certificate_id: str | None = None


@dataclass
class Entry:
    source: str = ""
    """Fingerprint of the config's request or certificate id: a change means a new one."""
    certificate_id: str | None = None
    serial_number: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    renew_at: str | None = None
    """When the agent renews it itself: at `renew_at_fraction` of its life (`renewed_by:
    agent`), or at 90 % when the server should have renewed it by then."""
    method: str | None = None
    """`managed` (the key comes from Certforge) or `csr` (the key is made here)."""
    renewed_by: str = "server"
    """`server` (auto-renewal, watched) or `agent` (CSR, or managed without auto-renewal)."""
    installed_at: str | None = None
    status: str = "starting"
    last_error: str | None = None
    last_error_at: str | None = None
    failures: int = 0
    next_attempt_at: str | None = None
    last_reload: str | None = None
    last_reload_error: str | None = None
    pending: Pending | None = None


@dataclass
class State:
    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError):
            return cls(path)  # unreadable state only costs a re-download, never a wrong file
        entries = {}
        for name, values in (raw.get("certificates") or {}).items():
            pending = values.pop("pending", None)
            known = {k: v for k, v in values.items() if k in Entry.__dataclass_fields__}
            entry = Entry(**known)
            entry.pending = Pending(**pending) if pending else None
            entries[name] = entry
        return cls(path, entries)

    def entry(self, name: str) -> Entry:
        return self.entries.setdefault(name, Entry())

    def save(self) -> None:
        document = {
            "version": VERSION,
            "pid": os.getpid(),
            "updated_at": now_text(),
            "certificates": {name: asdict(entry) for name, entry in self.entries.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_one(self.path, json.dumps(document, indent=2).encode() + b"\n", 0o600)


def now_text(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat(timespec="seconds")
