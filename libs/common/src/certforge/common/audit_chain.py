"""The audit log's hash chain: each sealed entry carries the hash of the one before it, in the
whole log and within its application, so that altering, removing or re-ordering a sealed entry
is detected by recomputing the chain.

Entries are written by many transactions at once (every api replica, on the hot path), so they
are not chained when written: a sealer later takes committed entries in id order and links them
(`seal`), and `Verifier` walks the links again. Both are pure: the database work is the caller's.
The hash covers every column of the entry plus the link fields, as canonical JSON; `details` is
hashed as PostgreSQL's own `jsonb` text, which is the same for the same value on every read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import orjson

GENESIS = bytes(32)
"""The `prev_hash` of the first entry of the log, and of an application's first entry."""


@dataclass(frozen=True)
class Entry:
    """An audit entry's columns, as the chain hashes them."""

    id: int
    occurred_at: datetime
    actor_id: UUID | None
    actor_name: str
    action: str
    resource_type: str
    resource_id: str | None
    application_id: UUID | None
    outcome: str
    status_code: int | None
    details: str
    """The `details` column as `jsonb` text (`details::text`)."""
    request_id: str | None


@dataclass(frozen=True)
class Link:
    """The chain fields stored beside an entry."""

    event_id: int
    seq: int
    application_id: UUID | None
    prev_hash: bytes
    app_prev_hash: bytes
    entry_hash: bytes


@dataclass(frozen=True)
class Head:
    seq: int
    entry_hash: bytes


def entry_hash(entry: Entry, seq: int, prev_hash: bytes, app_prev_hash: bytes) -> bytes:
    canonical = orjson.dumps(
        [
            seq,
            prev_hash.hex(),
            app_prev_hash.hex(),
            entry.id,
            entry.occurred_at.isoformat(),
            str(entry.actor_id) if entry.actor_id else None,
            entry.actor_name,
            entry.action,
            entry.resource_type,
            entry.resource_id,
            str(entry.application_id) if entry.application_id else None,
            entry.outcome,
            entry.status_code,
            entry.details,
            entry.request_id,
        ]
    )
    return hashlib.sha256(canonical).digest()


def seal(entries: Sequence[Entry], head: Head | None, app_heads: dict[UUID, bytes]) -> list[Link]:
    """Links for `entries` (in the order given) after the log's `head` and each application's
    last hash (`app_heads`, updated in place)."""
    seq, prev = (head.seq, head.entry_hash) if head else (0, GENESIS)
    links = []
    for entry in entries:
        seq += 1
        app_prev = app_heads.get(entry.application_id, GENESIS) if entry.application_id else GENESIS
        digest = entry_hash(entry, seq, prev, app_prev)
        links.append(Link(entry.id, seq, entry.application_id, prev, app_prev, digest))
        if entry.application_id:
            app_heads[entry.application_id] = digest
        prev = digest
    return links


@dataclass(frozen=True)
class Broken:
    """The first link that does not hold, and why."""

    event_id: int
    seq: int
    reason: str


class Verifier:
    """Walks links in `seq` order (of the whole log, or of one application) and reports the first
    that does not hold. Feed it in pages with `check`; `broken` then says where it broke."""

    def __init__(self, whole_log: bool) -> None:
        self._whole_log = whole_log
        self._last: Head | None = None
        self._app_last: dict[UUID, bytes] = {}
        self.checked = 0
        self.broken: Broken | None = None

    @property
    def head(self) -> Head | None:
        return self._last

    def check(self, pairs: Iterable[tuple[Entry | None, Link]]) -> bool:
        """False once a link is broken (and stays so); `entry` None: the entry is gone."""
        for entry, link in pairs:
            if self.broken is not None:
                return False
            reason = self._reason(entry, link)
            if reason is not None:
                self.broken = Broken(link.event_id, link.seq, reason)
                return False
            self.checked += 1
            self._last = Head(link.seq, link.entry_hash)
            if link.application_id:
                self._app_last[link.application_id] = link.entry_hash
        return self.broken is None

    def _reason(self, entry: Entry | None, link: Link) -> str | None:
        if entry is None:
            return "the entry this link seals is missing"
        if entry.id != link.event_id or entry.application_id != link.application_id:
            return "the link does not belong to this entry"
        if self._whole_log:
            expected_seq = self._last.seq + 1 if self._last else 1
            if link.seq != expected_seq:
                return f"sequence jumps from {expected_seq - 1} to {link.seq} (entries removed)"
            expected_prev = self._last.entry_hash if self._last else GENESIS
            if link.prev_hash != expected_prev:
                return "the previous entry's hash does not match (entries altered or re-ordered)"
        if link.application_id:
            expected_app = self._app_last.get(link.application_id, GENESIS)
            if link.app_prev_hash != expected_app:
                return "the application's previous entry's hash does not match"
        if entry_hash(entry, link.seq, link.prev_hash, link.app_prev_hash) != link.entry_hash:
            return "the entry was altered after it was sealed"
        return None
