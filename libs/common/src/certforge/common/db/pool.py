"""A plain asyncpg pool for the hot paths (authentication, issuance requests), next to the ORM.

The ORM is the default everywhere: it is where the schema lives, and most paths run a few
statements a minute. On the issuance path, though, SQLAlchemy's unit of work, statement
compilation and greenlet hops cost more CPU than PostgreSQL spends answering (profile in
bench/RESULTS.md): there a request runs a handful of fixed SQL statements, each one round trip
and, where several writes belong together, one statement with data-modifying CTEs (atomic
without BEGIN/COMMIT round trips). asyncpg prepares and caches each statement per connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from certforge.common.backoff import backoff_delay
from certforge.common.db.urls import asyncpg_url

Database = asyncpg.Pool
Row = asyncpg.Record

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[Row] | PoolConnectionProxy[Row]
    """A connection of its own or one acquired from a pool (annotations only)."""


def plain_url(url: str) -> str:
    """The libpq form asyncpg accepts (no SQLAlchemy `+driver`, hosts in the authority)."""
    return asyncpg_url(url)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init(connection: asyncpg.Connection) -> None:
    # JSON and JSONB columns in and out as Python values, like the ORM's.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset when a connection returns to the pool. By default asyncpg runs a reset
    query (`RESET ALL`, `UNLISTEN *`, advisory unlocks…) on every release: a round trip after
    every statement. Code on this pool never changes session state; an open transaction is
    still rolled back by asyncpg whatever this function does."""


async def open_pool(url: str, *, max_size: int) -> Database:
    pool = await asyncpg.create_pool(
        plain_url(url), min_size=1, max_size=max_size, init=_init, reset=_keep_session
    )
    assert pool is not None
    return pool


class LazyPool:
    """A pool opened at first use. asyncpg binds a pool to the event loop that opens it, and a
    worker builds its parts before its loop runs; services that never use it open nothing."""

    def __init__(self, url: str, *, max_size: int) -> None:
        self._url = url
        self._max_size = max_size
        self._pool: Database | None = None
        self._opening = asyncio.Lock()

    async def get(self) -> Database:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await open_pool(self._url, max_size=self._max_size)
        return self._pool

    async def get_when_reachable(self, log: logging.Logger) -> Database:
        """`get`, waiting for the database with a growing pause (0.5 s to 5 s) while it is
        unreachable or starting up: a service started while PostgreSQL restarts (or fails over)
        comes up when it is back, not with an exit its supervisor must notice."""
        attempt = 0
        while True:
            try:
                return await self.get()
            except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError) as exc:
                attempt += 1
                delay = backoff_delay(attempt, base=0.5, cap=5.0)
                log.warning("database not reachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
