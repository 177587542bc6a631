from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from sqlmodel import col, select

from certforge.api.deps import ActorDep, AuditDep, ContextDep, SessionDep
from certforge.api.domain import alerts
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.alerts import (
    AlertCreate,
    AlertDeliveryPublic,
    AlertPublic,
    AlertTestResult,
    AlertUpdate,
)
from certforge.api.schemas.common import Page
from certforge.api.versions import IfMatch, guard, tagged
from certforge.common.db.tables import AlertRule

router = APIRouter(prefix=API_PREFIX, tags=["alerts"])
BASE = "/applications/{app}/alerts"


@router.post(BASE, status_code=201, name="alert.create")
async def create_alert(
    app: str, body: AlertCreate, session: SessionDep, audit: AuditDep, context: ContextDep
) -> AlertPublic:
    """Tell someone when certificates near expiry or change (application-admin)."""
    return await alerts.create(session, context, audit, app, body)


@router.get(BASE, name="alert.list")
async def list_alerts(
    app: str, session: SessionDep, actor: ActorDep, page: PageDep
) -> Page[AlertPublic]:
    """Newest first (`limit`, `cursor`: the API's one paging convention)."""
    return await alerts.list_all(session, actor, app, page)


@router.get(BASE + "/{alert_id}", name="alert.get")
async def get_alert(
    app: str, alert_id: UUID, session: SessionDep, actor: ActorDep, response: Response
) -> AlertPublic:
    """With its `ETag`: send it back in `If-Match` to change it only if nobody did since."""
    return tagged(response, await alerts.get(session, actor, app, alert_id))


@router.patch(BASE + "/{alert_id}", name="alert.update")
async def update_alert(
    app: str,
    alert_id: UUID,
    body: AlertUpdate,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    response: Response,
    if_match: IfMatch = None,
) -> AlertPublic:
    """412 when `If-Match` names a version that is no longer current."""
    await guard(
        session,
        if_match,
        lambda: alerts.get(session, audit.actor, app, alert_id),
        lambda a: select(AlertRule).where(col(AlertRule.id) == a.id),
    )
    updated = await alerts.update(session, context, audit, app, alert_id, body)
    return tagged(response, updated)


@router.delete(BASE + "/{alert_id}", status_code=204, name="alert.delete")
async def delete_alert(app: str, alert_id: UUID, session: SessionDep, audit: AuditDep) -> Response:
    await alerts.delete(session, audit, app, alert_id)
    return Response(status_code=204)


@router.get(BASE + "/{alert_id}/deliveries", name="alert.deliveries")
async def alert_deliveries(
    app: str,
    alert_id: UUID,
    session: SessionDep,
    actor: ActorDep,
    status: Annotated[
        Literal["pending", "delivered", "failed", "skipped"] | None,
        Query(description="only deliveries in this status"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[AlertDeliveryPublic]:
    """Each delivery with its status, attempts and last error, newest first."""
    return await alerts.deliveries(
        session, actor, app, alert_id, status=status, limit=limit, cursor=cursor
    )


@router.post(BASE + "/{alert_id}/test", name="alert.test")
async def test_alert(
    app: str, alert_id: UUID, session: SessionDep, audit: AuditDep, context: ContextDep
) -> AlertTestResult:
    """Send a sample alert through every channel now; nothing is recorded as a delivery."""
    return await alerts.test(session, context, audit, app, alert_id)
