"""Key-encryption key rotation: re-seal every stored envelope under the active key id.

Online and resumable. Rows are walked in id order, a batch at a time, each batch in its own
short transaction that locks only its rows (`FOR UPDATE`), so issuance, renewal and revocation
go on meanwhile and a run stopped half-way is finished by running it again. The services keep
every old kid in their rings until the run reports nothing left, so each envelope opens whether
it has been re-sealed yet or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from certforge.common.crypto.envelope import KeyRing, kid_of
from certforge.common.db.sealed import SEALED_COLUMNS, Ring, SealedColumn

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection


@dataclass
class RewrapReport:
    """What a run re-sealed, per `table.column`."""

    rewrapped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rewrapped.values())


def _name(column: SealedColumn) -> str:
    return f"{column.table}.{column.column}"


def _page_sql(column: SealedColumn, first: bool) -> str:
    after = "" if first else f"AND {column.id_column} > $3 "
    return (
        f"SELECT {column.id_column} AS id, {column.column} AS blob FROM {column.table} "  # noqa: S608 - names from SEALED_COLUMNS
        f"WHERE {column.column} IS NOT NULL AND {column.kid_column} IS DISTINCT FROM $1 "
        f"{after}ORDER BY {column.id_column} LIMIT $2 FOR UPDATE"
    )


def _update_sql(column: SealedColumn) -> str:
    return (
        f"UPDATE {column.table} SET {column.column} = $2, {column.kid_column} = $3 "  # noqa: S608 - names from SEALED_COLUMNS
        f"WHERE {column.id_column} = $1"
    )


async def rewrap_column(
    conn: Connection, column: SealedColumn, ring: KeyRing, batch_size: int = 500
) -> int:
    """Re-seal every envelope of `column` not under `ring.active_kid`; return how many.

    One pass in id order: rows written meanwhile are sealed under the active kid already (the
    services run with the new ring first), so a row behind the cursor needs nothing.
    """
    done = 0
    last: Any = None
    while True:
        async with conn.transaction():
            if last is None:
                rows = await conn.fetch(_page_sql(column, True), ring.active_kid, batch_size)
            else:
                rows = await conn.fetch(_page_sql(column, False), ring.active_kid, batch_size, last)
            if not rows:
                return done
            updates = [
                (row["id"], ring.rewrap(row["blob"], column.aad(row["id"])), ring.active_kid)
                for row in rows
                if kid_of(row["blob"]) != ring.active_kid
            ]
            await conn.executemany(_update_sql(column), updates)
        done += len(updates)
        last = rows[-1]["id"]


async def rewrap_all(
    conn: Connection, rings: dict[Ring, KeyRing], batch_size: int = 500
) -> RewrapReport:
    """`rewrap_column` for every sealed column of the rings given."""
    report = RewrapReport()
    for column in SEALED_COLUMNS:
        if column.ring in rings:
            report.rewrapped[_name(column)] = await rewrap_column(
                conn, column, rings[column.ring], batch_size
            )
    return report


async def kids_in_use(conn: Connection) -> dict[str, dict[str, int]]:
    """`{"table.column": {kid: rows}}`: what each ring must still be able to open. Read from the
    envelopes' mirror columns, so it is one indexed-free count per table, not a decryption."""
    usage: dict[str, dict[str, int]] = {}
    for column in SEALED_COLUMNS:
        rows = await conn.fetch(
            f"SELECT {column.kid_column} AS kid, count(*) AS n FROM {column.table} "  # noqa: S608 - names from SEALED_COLUMNS
            f"WHERE {column.column} IS NOT NULL GROUP BY {column.kid_column} ORDER BY 1"
        )
        usage[_name(column)] = {row["kid"]: int(row["n"]) for row in rows}
    return usage


def kids_needed(usage: dict[str, dict[str, int]]) -> dict[Ring, set[str]]:
    """The kids each ring must hold to open every envelope counted in `usage`."""
    needed: dict[Ring, set[str]] = {Ring.CA: set(), Ring.LEAF: set()}
    for column in SEALED_COLUMNS:
        needed[column.ring] |= set(usage.get(_name(column), {}))
    return needed


def missing_kids(needed: dict[Ring, set[str]], rings: dict[Ring, KeyRing]) -> dict[Ring, set[str]]:
    """Per ring, the kids envelopes use that the ring cannot open (empty sets when all is well)."""
    return {ring: kids - set(rings[ring].kids) for ring, kids in needed.items() if ring in rings}
