"""Rate limits per caller: token buckets in PostgreSQL, shared by every api replica.

A limit of N a minute is a bucket of N tokens refilled at N/60 a second: a caller may burst N
requests, then goes at the refill rate. Taking a token is one statement on the plain pool, in
its own (implicit) transaction, never inside the request's: the bucket's row lock is held for
that statement only, so one caller's concurrent requests are not serialised on it. The table is
UNLOGGED (see `RateBucket`). A refused attempt takes no token: a caller who keeps hammering is
let through again at the refill rate, not starved for ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends

from certforge.api.deps import ActorDep, ContextDep
from certforge.common.db.pool import Database
from certforge.common.errors import RateLimited

_TAKE = """
WITH prev AS (
    SELECT tokens, updated_at FROM rate_buckets WHERE key = $1 FOR UPDATE
), avail AS (
    SELECT LEAST($2::float8, COALESCE(
        (SELECT tokens + GREATEST(0, EXTRACT(EPOCH FROM ($4::timestamptz - updated_at)))
            * $3::float8 FROM prev),
        $2::float8)) AS tokens
), taken AS (
    INSERT INTO rate_buckets AS b (key, tokens, updated_at)
    SELECT $1, CASE WHEN tokens >= 1 THEN tokens - 1 ELSE tokens END, $4 FROM avail
    ON CONFLICT (key) DO UPDATE SET tokens = EXCLUDED.tokens, updated_at = EXCLUDED.updated_at
)
SELECT tokens FROM avail
"""
"""The tokens available now (before this request's), and the bucket updated to match."""


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests a minute per key, in bursts of up to `per_minute`; 0: no limit."""

    name: str
    per_minute: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60


def retry_after(available: float, limit: Limit) -> int | None:
    """None when a token is available; else the whole seconds until one is."""
    if available >= 1:
        return None
    return max(1, math.ceil((1 - available) / limit.per_second))


async def take(db: Database, limit: Limit, key: str, now: datetime) -> None:
    """Take a token from `key`'s bucket of `limit`, or raise `RateLimited`."""
    if limit.per_minute <= 0:
        return
    available = await db.fetchval(
        _TAKE, f"{limit.name}:{key}"[:200], float(limit.per_minute), limit.per_second, now
    )
    wait = retry_after(float(available), limit)
    if wait is not None:
        raise RateLimited(
            f"too many {limit.name} requests: at most {limit.per_minute} a minute; "
            f"retry in {wait} s",
            retry_after=wait,
        )


async def limit_issuance(context: ContextDep, actor: ActorDep) -> None:
    """A dependency of the routes that request a certificate (new or renewal) for a caller."""
    limit = Limit("issuance", context.settings.issuance_requests_per_identity)
    await take(context.db, limit, str(actor.identity_id), datetime.now(UTC))


IssuanceLimitDep = Annotated[None, Depends(limit_issuance)]
