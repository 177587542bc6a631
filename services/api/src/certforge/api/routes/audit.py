from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from certforge.api.deps import ActorDep, ContextDep, SessionDep
from certforge.api.domain.audit_log import AuditFilter, search, verify_chain
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.audit import AuditChainVerification, AuditEventPublic
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


@router.get("/audit-events/verification", name="audit.verify")
async def verify_audit_chain(
    session: SessionDep, actor: ActorDep, context: ContextDep, application: str | None = None
) -> AuditChainVerification:
    """Recompute the audit log's hash chain and name the first entry altered, removed or
    re-ordered since it was sealed. The whole log for product admins; `application` for its
    application admins and auditors. `certforge audit verify` calls this."""
    return await verify_chain(session, context.db, actor, application, datetime.now(UTC))
