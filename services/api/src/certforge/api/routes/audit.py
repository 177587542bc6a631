from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from certforge.api.deps import ActorDep, SessionDep
from certforge.api.domain.audit_log import AuditFilter, search
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.audit import AuditEventPublic
from certforge.api.schemas.common import Page

router = APIRouter(prefix=API_PREFIX, tags=["audit"])


@router.get("/audit-events", name="audit.list")
async def list_audit_events(
    session: SessionDep,
    actor: ActorDep,
    application: str | None = None,
    actor_id: UUID | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    outcome: Annotated[str | None, Query(pattern="^(success|failed|denied)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[AuditEventPublic]:
    """Newest first. Product admins see all; application admins and auditors their apps'."""
    return await search(
        session,
        actor,
        AuditFilter(
            application=application,
            actor_id=actor_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        ),
    )
