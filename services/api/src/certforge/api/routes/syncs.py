from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response
from sqlmodel import col, select

from certforge.api.deps import ActorDep, AuditDep, ContextDep, SessionDep
from certforge.api.domain import syncs
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.common import Page
from certforge.api.schemas.syncs import (
    SyncCreate,
    SyncPublic,
    SyncRunResult,
    SyncStatePublic,
    SyncTestResult,
    SyncUpdate,
)
from certforge.api.versions import IfMatch, guard, tagged
from certforge.common.db.tables import SyncDestination

router = APIRouter(prefix=API_PREFIX, tags=["syncs"])
BASE = "/applications/{app}/syncs"


@router.post(BASE, status_code=201, name="sync.create")
async def create_sync(
    app: str, body: SyncCreate, session: SessionDep, audit: AuditDep, context: ContextDep
) -> SyncPublic:
    """Push the application's certificates to an external store (application-admin)."""
    return await syncs.create(session, context, audit, app, body)


@router.get(BASE, name="sync.list")
async def list_syncs(
    app: str, session: SessionDep, actor: ActorDep, page: PageDep
) -> Page[SyncPublic]:
    """Newest first (`limit`, `cursor`: the API's one paging convention)."""
    return await syncs.list_all(session, actor, app, page)


@router.get(BASE + "/{sync_id}", name="sync.get")
async def get_sync(
    app: str, sync_id: UUID, session: SessionDep, actor: ActorDep, response: Response
) -> SyncPublic:
    """With its `ETag`: send it back in `If-Match` to change it only if nobody did since."""
    return tagged(response, await syncs.get(session, actor, app, sync_id))


@router.patch(BASE + "/{sync_id}", name="sync.update")
async def update_sync(
    app: str,
    sync_id: UUID,
    body: SyncUpdate,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    response: Response,
    if_match: IfMatch = None,
) -> SyncPublic:
    """412 when `If-Match` names a version that is no longer current."""
    await guard(
        session,
        if_match,
        lambda: syncs.get(session, audit.actor, app, sync_id),
        lambda s: select(SyncDestination).where(col(SyncDestination.id) == s.id),
    )
    return tagged(response, await syncs.update(session, context, audit, app, sync_id, body))


@router.delete(BASE + "/{sync_id}", status_code=204, name="sync.delete")
async def delete_sync(app: str, sync_id: UUID, session: SessionDep, audit: AuditDep) -> Response:
    await syncs.delete(session, audit, app, sync_id)
    return Response(status_code=204)


@router.post(BASE + "/{sync_id}/run", name="sync.run")
async def run_sync(
    app: str, sync_id: UUID, session: SessionDep, audit: AuditDep, context: ContextDep
) -> SyncRunResult:
    """Push every matching certificate now."""
    return await syncs.run(session, context, audit, app, sync_id)


@router.post(BASE + "/{sync_id}/test", name="sync.test")
async def test_sync(
    app: str, sync_id: UUID, session: SessionDep, audit: AuditDep, context: ContextDep
) -> SyncTestResult:
    """Check the credentials and reachability without writing anything."""
    return await syncs.test(session, context, audit, app, sync_id)


@router.get(BASE + "/{sync_id}/certificates", name="sync.certificates")
async def sync_states(
    app: str, sync_id: UUID, session: SessionDep, actor: ActorDep, page: PageDep
) -> Page[SyncStatePublic]:
    """Per certificate lineage: status, external id, attempts, last error, last synced.
    Newest lineage first (`limit`, `cursor`: the API's one paging convention)."""
    return await syncs.states(session, actor, app, sync_id, page)
