from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from certforge.api.deps import AuditDep, ProductAdminDep, SessionDep
from certforge.api.domain import policies
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.policies import PolicyCreate, PolicyPublic, PolicyUpdate

router = APIRouter(prefix=API_PREFIX, tags=["policies"])


@router.post("/policies", status_code=201, name="policy.create")
async def create_policy(
    body: PolicyCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> PolicyPublic:
    return await policies.create(session, audit, body)


@router.get("/policies", name="policy.list")
async def list_policies(session: SessionDep, _: ProductAdminDep) -> list[PolicyPublic]:
    return await policies.list_all(session)


@router.get("/policies/{policy_id}", name="policy.get")
async def get_policy(policy_id: UUID, session: SessionDep, _: ProductAdminDep) -> PolicyPublic:
    return await policies.get(session, policy_id)


@router.patch("/policies/{policy_id}", name="policy.update")
async def update_policy(
    policy_id: UUID, body: PolicyUpdate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> PolicyPublic:
    """Change a policy; refused when a profile's defaults would no longer satisfy it."""
    return await policies.update(session, audit, policy_id, body)


@router.delete("/policies/{policy_id}", status_code=204, name="policy.delete")
async def delete_policy(
    policy_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await policies.delete(session, audit, policy_id)
    return Response(status_code=204)
