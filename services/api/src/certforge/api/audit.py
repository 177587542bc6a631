"""The audit log: every change and every refused change, who, what, when, outcome.

Successful changes are recorded inside the transaction that makes them, so a change is never
without its entry. Refused attempts (bad input, missing role, conflict) are recorded by the
error handler in a transaction of their own, since the change itself was rolled back.
The action is the route's name (`ca.create`, `application.member.put`), so both paths agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import Request
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.auth import Actor
from certforge.common.db.tables import AuditEvent

log = logging.getLogger(__name__)

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


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
                actor_id=self.actor.identity_id,
                actor_name=self.actor.name,
                action=self.action,
                resource_type=resource_type,
                resource_id=str(resource_id) if resource_id is not None else None,
                application_id=application_id,
                outcome="success",
                status_code=status_code,
                details=details or {},
                request_id=self.request_id,
            )
        )


def route_action(request: Request) -> str | None:
    route = request.scope.get("route")
    return getattr(route, "name", None)


async def record_refusal(request: Request, status: int, code: str, detail: str) -> None:
    """Append a `denied`/`failed` entry for a refused change; never raises."""
    action = route_action(request)
    if request.method not in _UNSAFE or action is None:
        return
    actor: Actor | None = getattr(request.state, "actor", None)
    application_id: UUID | None = getattr(request.state, "application_id", None)
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
                        "detail": detail[:500],
                        "path": dict(request.path_params),
                    },
                    request_id=getattr(request.state, "request_id", None),
                )
            )
            await session.commit()
    except Exception:
        log.exception("could not record a refused %s in the audit log", action)
