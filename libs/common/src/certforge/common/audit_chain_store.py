"""The audit chain in PostgreSQL: sealing committed entries (the renewer) and reading links back
for verification (the api). The hashing is `certforge.common.audit_chain`'s.

Sealing takes entries that have no link yet, in id order, under a transaction-level advisory
lock, so that any number of sealers (renewer replicas) append one chain. An entry is committed
by its own transaction, possibly after entries with higher ids; those are sealed in the order
they become visible, which is why the chain's order is `seq`, not `id`. Only the newest
`window` ids are searched each pass (an index range, not the whole log); `sweep` searches all.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from certforge.common.audit_chain import Entry, Head, Link, seal
from certforge.common.db.pool import Database, Row

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

_LOCK = 0x41554449544348  # "AUDITCH": one sealer at a time, across replicas

_ENTRY = """e.id, e.occurred_at, e.actor_id, e.actor_name, e.action, e.resource_type,
    e.resource_id, e.application_id, e.outcome, e.status_code, e.details::text AS details,
    e.request_id"""

_PENDING = f"""
SELECT {_ENTRY} FROM audit_events e
WHERE e.id > $1 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
ORDER BY e.id LIMIT $2
"""  # noqa: S608 - constant text

_APP_HEADS = """
SELECT DISTINCT ON (application_id) application_id, entry_hash FROM audit_chain
WHERE application_id = ANY($1::uuid[]) ORDER BY application_id, seq DESC
"""

_INSERT = """
INSERT INTO audit_chain (event_id, seq, application_id, prev_hash, app_prev_hash, entry_hash)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::bytea[], $5::bytea[], $6::bytea[])
"""


def _entry(row: Row) -> Entry:
    return Entry(**{k: row[k] for k in Entry.__dataclass_fields__})


def _link(row: Row) -> Link:
    return Link(**{k: row[k] for k in Link.__dataclass_fields__})


async def seal_pending(db: Database, *, batch: int = 1000, window: int = 10_000) -> int:
    """Link up to `batch` unsealed entries among the newest `window` ids (`window` 0: all)."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        head_row = await conn.fetchrow(
            "SELECT seq, entry_hash FROM audit_chain ORDER BY seq DESC LIMIT 1"
        )
        low = 0
        if window:
            newest = await conn.fetchval("SELECT max(id) FROM audit_events")
            low = max(0, (newest or 0) - window)
        rows = await conn.fetch(_PENDING, low, batch)
        if not rows:
            return 0
        entries = [_entry(r) for r in rows]
        links = seal(entries, _head(head_row), await _app_heads(conn, entries))
        await conn.execute(_INSERT, *_columns(links))
        return len(links)


def _head(row: Row | None) -> Head | None:
    return Head(row["seq"], row["entry_hash"]) if row else None


async def _app_heads(conn: Connection, entries: list[Entry]) -> dict[UUID, bytes]:
    apps = list({e.application_id for e in entries if e.application_id})
    rows = await conn.fetch(_APP_HEADS, apps) if apps else []
    return {r["application_id"]: r["entry_hash"] for r in rows}


def _columns(links: list[Link]) -> list[list[Any]]:
    return [
        [link.event_id for link in links],
        [link.seq for link in links],
        [link.application_id for link in links],
        [link.prev_hash for link in links],
        [link.app_prev_hash for link in links],
        [link.entry_hash for link in links],
    ]


async def links_page(
    db: Database, application_id: UUID | None, after_seq: int, limit: int
) -> list[tuple[Entry | None, Link]]:
    """Links after `after_seq` in order, with their entries (None where the entry is gone; the
    foreign key forbids it, but whoever alters rows by hand may have dropped it first)."""
    where = "c.seq > $1" + (" AND c.application_id = $3" if application_id else "")
    sql = f"""
    SELECT c.event_id, c.seq, c.application_id AS link_app, c.prev_hash, c.app_prev_hash,
           c.entry_hash, e.id IS NOT NULL AS present, {_ENTRY}
    FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
    WHERE {where} ORDER BY c.seq LIMIT $2
    """  # noqa: S608 - constant text
    args: list[Any] = [after_seq, limit] + ([application_id] if application_id else [])
    rows = await db.fetch(sql, *args)
    return [
        (
            _entry(r) if r["present"] else None,
            Link(
                r["event_id"],
                r["seq"],
                r["link_app"],
                r["prev_hash"],
                r["app_prev_hash"],
                r["entry_hash"],
            ),
        )
        for r in rows
    ]


async def unsealed(db: Database, application_id: UUID | None, before: datetime) -> int:
    """Entries older than `before` that no link seals yet: a sealer that is not running, or an
    entry committed far behind its id's neighbours (`sweep` finds it)."""
    sql = """SELECT count(*) FROM audit_events e
    WHERE e.occurred_at < $1 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)"""
    if application_id:
        return int(await db.fetchval(sql + " AND e.application_id = $2", before, application_id))
    return int(await db.fetchval(sql, before))
