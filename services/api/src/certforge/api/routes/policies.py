from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response
from sqlmodel import col, select

from certforge.api.deps import AuditDep, ProductAdminDep, SessionDep
from certforge.api.domain import policies
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.common import Page
from certforge.api.schemas.policies import PolicyCreate, PolicyPublic, PolicyUpdate
from certforge.api.versions import IfMatch, guard, tagged
from certforge.common.db.tables import Policy

router = APIRouter(prefix=API_PREFIX, tags=["policies"])


@router.post("/policies", status_code=201, name="policy.create")
async def create_policy(
    body: PolicyCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> PolicyPublic:
    return await policies.create(session, audit, body)


@router.get("/policies", name="policy.list")
async def list_policies(
    session: SessionDep, _: ProductAdminDep, page: PageDep
) -> Page[PolicyPublic]:
    """Newest first (`limit`, `cursor`: the API's one paging convention)."""
    return await policies.list_all(session, page)


@router.get("/policies/{policy_id}", name="policy.get")
async def get_policy(
    policy_id: UUID, session: SessionDep, _: ProductAdminDep, response: Response
) -> PolicyPublic:
    """With its `ETag`: send it back in `If-Match` to change it only if nobody did since."""
    return tagged(response, await policies.get(session, policy_id))


@router.patch("/policies/{policy_id}", name="policy.update")
async def update_policy(
    policy_id: UUID,
    body: PolicyUpdate,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
    response: Response,
    if_match: IfMatch = None,
) -> PolicyPublic:
    """Change a policy; refused when a profile's defaults would no longer satisfy it, and
    (412) when `If-Match` names a version that is no longer current."""
    await guard(
        session,
        if_match,
        lambda: policies.get(session, policy_id),
        lambda p: select(Policy).where(col(Policy.id) == p.id),
    )
    return tagged(response, await policies.update(session, audit, policy_id, body))


@router.delete("/policies/{policy_id}", status_code=204, name="policy.delete")
async def delete_policy(
    policy_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await policies.delete(session, audit, policy_id)
    return Response(status_code=204)
