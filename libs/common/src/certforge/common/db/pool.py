"""A plain asyncpg pool for the hot paths (authentication, issuance requests), next to the ORM.

The ORM is the default everywhere: it is where the schema lives, and most paths run a few
statements a minute. On the issuance path, though, SQLAlchemy's unit of work, statement
compilation and greenlet hops cost more CPU than PostgreSQL spends answering (profile in
bench/RESULTS.md): there a request runs a handful of fixed SQL statements, each one round trip
and, where several writes belong together, one statement with data-modifying CTEs (atomic
without BEGIN/COMMIT round trips). asyncpg prepares and caches each statement per connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

Database = asyncpg.Pool
Row = asyncpg.Record


def plain_url(url: str) -> str:
    """asyncpg accepts only `postgresql://`/`postgres://`; drop a SQLAlchemy `+driver` suffix."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init(connection: asyncpg.Connection) -> None:
    # JSON and JSONB columns in and out as Python values, like the ORM's.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def open_pool(url: str, *, max_size: int) -> Database:
    pool = await asyncpg.create_pool(plain_url(url), min_size=1, max_size=max_size, init=_init)
    assert pool is not None
    return pool
