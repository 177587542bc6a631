"""OCSP answers and CRLs kept in each api replica's memory: the relying parties' hot path.

Pure data structures (no I/O); `domain/ocsp.py` and `domain/crls.py` fill them. An OCSP answer
is remembered under (CA id, serial) until half its validity has passed; a revocation makes every
replica forget it (`replicas.Replicas`). `epoch` guards against a load that read the database
before a revocation and would otherwise put the old answer back after the forget: a load
remembers its answer only if no forget happened while it ran.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from functools import cached_property
from uuid import UUID

from certforge.api.ocsp import CertStatus

AnswerKey = tuple[UUID, int]
"""(CA id, serial number)."""


def etag_of(der: bytes) -> str:
    """A strong validator: the same bytes, the same tag, on every replica."""
    return '"' + hashlib.sha256(der).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Prepared:
    """A signed OCSP answer ready to serve, with the status it states (to sign a live answer
    for a nonce or another CertID hash without asking the database again)."""

    der: bytes
    status: CertStatus
    this_update: datetime
    next_update: datetime
    etag: str

    @cached_property
    def http_dates(self) -> tuple[str, str]:
        """(Last-Modified, Expires), formatted once: they are in every answer's headers."""
        return (
            format_datetime(self.this_update, usegmt=True),
            format_datetime(self.next_update, usegmt=True),
        )

    def fresh(self, now: datetime) -> bool:
        """Served until half its validity has passed; then it is signed again."""
        return now < self.this_update + (self.next_update - self.this_update) / 2


CLAIM = timedelta(seconds=5)
"""How long one request's claim to re-sign (or re-check) a stale entry holds off the others."""


@dataclass
class AnswerMemory:
    """Pre-signed answers by (CA id, serial), at most `max_entries` (oldest dropped first)."""

    max_entries: int = 100_000
    epoch: int = 0
    _answers: dict[AnswerKey, Prepared] = field(default_factory=dict)
    _refreshing: dict[AnswerKey, datetime] = field(default_factory=dict)

    def get(self, key: AnswerKey, now: datetime) -> Prepared | None:
        """The answer while fresh (before half its validity)."""
        prepared = self._answers.get(key)
        return prepared if prepared is not None and prepared.fresh(now) else None

    def serve(self, key: AnswerKey, now: datetime) -> Prepared | None:
        """What the fast path serves: the fresh answer; past half its validity, `None` for the
        one request that claims its re-signing and the still valid answer for all the others
        meanwhile (no stampede of signatures at thousands of requests a second)."""
        prepared = self._answers.get(key)
        if prepared is None or prepared.fresh(now):
            return prepared
        claimed = self._refreshing.get(key)
        if now < prepared.next_update and claimed is not None and now - claimed < CLAIM:
            return prepared
        self._refreshing[key] = now
        return None

    def remember(self, key: AnswerKey, prepared: Prepared, epoch: int) -> None:
        """Keep `prepared`, loaded when `epoch` was current, unless a forget happened since."""
        self._refreshing.pop(key, None)
        if epoch != self.epoch or self.max_entries <= 0:
            return
        self._answers.pop(key, None)
        if len(self._answers) >= self.max_entries:
            oldest = next(iter(self._answers))
            del self._answers[oldest]
            self._refreshing.pop(oldest, None)
        self._answers[key] = prepared

    def forget(self, key: AnswerKey) -> None:
        self.epoch += 1
        self._answers.pop(key, None)
        self._refreshing.pop(key, None)

    def __len__(self) -> int:
        return len(self._answers)


def forget_message(key: AnswerKey) -> bytes:
    """What a revoking replica sends the others: `<ca id>:<serial hex>`."""
    return f"{key[0]}:{key[1]:x}".encode()


def key_of_message(data: bytes) -> AnswerKey | None:
    try:
        ca, serial = data.decode().split(":")
        return UUID(ca), int(serial, 16)
    except ValueError:
        return None


@dataclass
class ServedCrl:
    """The newest CRL of one CA as served, DER and PEM, with its HTTP validators."""

    number: int
    der: bytes
    this_update: datetime
    next_update: datetime
    etag: str
    checked_at: float
    """Monotonic time the database last confirmed this is the newest CRL."""
    recheck_claimed_at: float | None = None
    """Set while one request re-checks; the others are served this one meanwhile."""
    _pem: bytes | None = None

    @cached_property
    def http_dates(self) -> tuple[str, str]:
        """(Last-Modified, Expires), formatted once."""
        return (
            format_datetime(self.this_update, usegmt=True),
            format_datetime(self.next_update, usegmt=True),
        )

    @property
    def pem(self) -> bytes:
        """Armoured once, on the first PEM request (RFC 7468), without re-parsing the CRL."""
        if self._pem is None:
            b64 = base64.encodebytes(self.der).replace(b"\n", b"")
            lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
            self._pem = b"-----BEGIN X509 CRL-----\n" + lines + b"\n-----END X509 CRL-----\n"
        return self._pem


@dataclass
class CrlMemory:
    crls: dict[UUID, ServedCrl] = field(default_factory=dict)
