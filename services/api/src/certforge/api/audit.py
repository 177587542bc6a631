"""The audit log: every change and every refused change, who, what, when, outcome.

Successful changes are recorded inside the transaction that makes them, so a change is never
without its entry. Refused attempts (bad input, missing role, conflict) are recorded by the
error handler in a transaction of their own, since the change itself was rolled back.
The action is the route's name (`ca.create`, `application.member.put`), so both paths agree.
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
from certforge.api.domain.common import by_slug_or_id
from certforge.common.db.columns import insertable
from certforge.common.db.tables import Application, AuditEvent
from certforge.common.errors import NotFound

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


async def record_refusal(request: Request, status: int, code: str, detail: str) -> None:
    """Append a `denied`/`failed` entry for a refused change; never raises."""
    action = route_action(request)
    if request.method not in _UNSAFE or action is None:
        return
    actor: Actor | None = getattr(request.state, "actor", None)
    application_id: UUID | None = getattr(request.state, "application_id", None)
    try:
        async with request.app.state.certforge.sessions() as session:
            if application_id is None:
                application_id = await _target_application(session, request.path_params)
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


async def _target_application(session: AsyncSession, path: dict[str, Any]) -> UUID | None:
    """The application a refused request aimed at, so that its admins and auditors see it."""
    ref = path.get("app")
    if not isinstance(ref, str):
        return None
    try:
        app: Application = await by_slug_or_id(session, Application, ref, "application", "app")
    except NotFound:
        return None
    return app.id


def _storable(text: str) -> str:
    """PostgreSQL text and JSONB cannot hold NUL; a caller's input may."""
    return text.replace("\x00", "\\x00")
