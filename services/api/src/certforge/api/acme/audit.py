"""Audit entries of ACME actions. An ACME client is no identity of ours: the actor is the
account (`acme-account:<id>`, no `actor_id`), in the application the account belongs to, so
the application's admins and auditors see what its ACME clients did."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from certforge.api.audit import ENTRY_COLUMNS
from certforge.common.db.columns import insert_sql, values
from certforge.common.db.tables import AuditEvent

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

INSERT_SQL = insert_sql(AuditEvent, ENTRY_COLUMNS)


def entry(
    *,
    action: str,
    account_id: UUID,
    application_id: UUID,
    resource_type: str,
    resource_id: UUID | str,
    details: dict[str, Any],
    now: datetime,
    status_code: int = 200,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "occurred_at": now,
        "actor_id": None,
        "actor_name": actor_name(account_id),
        "action": action,
        "resource_type": resource_type,
        "resource_id": str(resource_id),
        "application_id": application_id,
        "outcome": "success",
        "status_code": status_code,
        "details": details,
        "request_id": request_id,
    }


def actor_name(account_id: UUID) -> str:
    return f"acme-account:{account_id}"


async def record(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(INSERT_SQL, *values(row, ENTRY_COLUMNS))
