"""The audit log: every change and every refused change, who, what, when, outcome.

Successful changes are recorded inside the transaction that makes them, so a change is never
without its entry. Refused attempts (bad input, missing role, conflict) are recorded by the
error handler in a transaction of their own, since the change itself was rolled back.
The action is the route's name (`ca.create`, `application.member.put`), so both paths agree.

This module sits below the domain: what an entry needs from it (the application a refused
request aimed at) is resolved by the caller and handed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import Request
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.auth import Actor
from certforge.common.db.columns import insertable
from certforge.common.db.tables import AuditEvent

log = logging.getLogger(__name__)

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


ENTRY_COLUMNS = insertable(AuditEvent)
"""The columns of an audit INSERT written as plain SQL; `AuditScope.entry` fills every one."""


@dataclass(frozen=True)
class AuditScope:
    actor: Actor
    action: str
    request_id: str | None

    def record(
        self,
        session: AsyncSession,
        *,
        resource_type: str,
        resource_id: UUID | str | None,
        application_id: UUID | None = None,
        details: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> None:
        session.add(
            AuditEvent(
                **self.entry(
                    resource_type=resource_type,
                    resource_id=resource_id,
                    application_id=application_id,
                    details=details,
                    status_code=status_code,
                )
            )
        )

    def entry(
        self,
        *,
        resource_type: str,
        resource_id: UUID | str | None,
        application_id: UUID | None = None,
        details: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> dict[str, Any]:
        """The columns of a success entry (for `record`, and for the hot paths' plain SQL)."""
        return {
            "occurred_at": datetime.now(UTC),
            "actor_id": self.actor.identity_id,
            "actor_name": self.actor.name,
            "action": self.action,
            "resource_type": resource_type,
            "resource_id": str(resource_id) if resource_id is not None else None,
            "application_id": application_id,
            "outcome": "success",
            "status_code": status_code,
            "details": details or {},
            "request_id": self.request_id,
        }


def route_action(request: Request) -> str | None:
    route = request.scope.get("route")
    return getattr(route, "name", None)


def refused_action(request: Request) -> str | None:
    """The action of a refused request if its refusal is audited: changes only, not reads."""
    return route_action(request) if request.method in _UNSAFE else None


async def record_refusal(
    request: Request, status: int, code: str, detail: str, application_id: UUID | None
) -> None:
    """Append a `denied`/`failed` entry for a refused change; never raises.

    `application_id` is the application the request aimed at, so that its admins and auditors
    see the entry; None when it aimed at none (or at one that does not exist).
    """
    action = refused_action(request)
    if action is None:
        return
    actor: Actor | None = getattr(request.state, "actor", None)
    try:
        async with request.app.state.certforge.sessions() as session:
            session.add(
                AuditEvent(
                    actor_id=actor.identity_id if actor else None,
                    actor_name=actor.name if actor else "",
                    action=action,
                    resource_type=action.split(".")[0],
                    resource_id=None,
                    application_id=application_id,
                    outcome="denied" if status in (401, 403) else "failed",
                    status_code=status,
                    details={
                        "code": code,
                        "detail": _storable(detail[:500]),
                        "path": {
                            k: _storable(str(v)[:200]) for k, v in request.path_params.items()
                        },
                    },
                    request_id=getattr(request.state, "request_id", None),
                )
            )
            await session.commit()
    except Exception:
        log.exception("could not record a refused %s in the audit log", action)


def _storable(text: str) -> str:
    """PostgreSQL text and JSONB cannot hold NUL; a caller's input may."""
    return text.replace("\x00", "\\x00")
