"""Replay nonces (RFC 8555 §6.5), shared by every api replica through PostgreSQL.

A nonce is a row until it is used: `consume` deletes it (DELETE … RETURNING), so whichever
replica sees it first accepts it, once. Unused nonces expire after a setting; expired rows are
purged now and then by the replica that issues a nonce (one time in `PURGE_ONE_IN`), a bounded
DELETE, so the table stays small without a background job.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from certforge.common.acme import b64url
from certforge.common.db.pool import Database

_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PURGE_ONE_IN = 64
PURGE_BATCH = 1000

_ISSUE_SQL = "INSERT INTO acme_nonces (value, expires_at) VALUES ($1, $2)"
_CONSUME_SQL = "DELETE FROM acme_nonces WHERE value = $1 RETURNING expires_at"
_PURGE_SQL = """
DELETE FROM acme_nonces WHERE value IN (
    SELECT value FROM acme_nonces WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED
)
"""


def new_nonce() -> str:
    """128 random bits, base64url (RFC 8555 §6.5.1 asks for at least 64)."""
    return b64url(secrets.token_bytes(16))


async def issue(db: Database, now: datetime, lifetime_seconds: int) -> str:
    value = new_nonce()
    await db.execute(_ISSUE_SQL, value, now + timedelta(seconds=lifetime_seconds))
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        await purge(db, now)
    return value


async def purge(db: Database, now: datetime) -> int:
    """Delete up to `PURGE_BATCH` expired nonces; how many went."""
    status = await db.execute(_PURGE_SQL, now, PURGE_BATCH)
    return int(status.rsplit(" ", 1)[1])


async def consume(db: Database, value: object, now: datetime) -> bool:
    """Whether `value` is a nonce we issued, unused and unexpired; it is used up either way."""
    if not isinstance(value, str) or _NONCE.fullmatch(value) is None:
        return False  # never issued by us (and a NUL would not even reach PostgreSQL)
    expires_at = await db.fetchval(_CONSUME_SQL, value)
    return expires_at is not None and expires_at > now
