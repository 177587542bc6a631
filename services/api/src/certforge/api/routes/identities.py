from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Body, Response

from certforge.api.deps import ActorDep, AuditDep, ProductAdminDep, SessionDep
from certforge.api.domain import identities
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.identities import (
    IdentityCreate,
    IdentityCreated,
    IdentityDetail,
    IdentityPublic,
    NewToken,
    TokenCreate,
)

router = APIRouter(prefix=API_PREFIX, tags=["identities"])


@router.post("/identities", status_code=201, name="identity.create")
async def create_identity(
    body: IdentityCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> IdentityCreated:
    """Create a person or machine identity and its first token (shown once)."""
    return await identities.create(session, audit, body)


@router.get("/identities", name="identity.list")
async def list_identities(session: SessionDep, _: ProductAdminDep) -> list[IdentityPublic]:
    return await identities.list_all(session)


@router.get("/me", name="identity.me")
async def me(session: SessionDep, actor: ActorDep) -> IdentityDetail:
    """The caller's identity, tokens and memberships."""
    return await identities.detail(session, actor.identity_id)


@router.get("/identities/{identity_id}", name="identity.get")
async def get_identity(
    identity_id: UUID, session: SessionDep, _: ProductAdminDep
) -> IdentityDetail:
    return await identities.detail(session, identity_id)


@router.delete("/identities/{identity_id}", status_code=204, name="identity.disable")
async def disable_identity(
    identity_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    """Disable the identity and revoke all its tokens."""
    await identities.disable(session, audit, identity_id)
    return Response(status_code=204)


@router.post("/identities/{identity_id}/tokens", status_code=201, name="identity.token.create")
async def create_token(
    identity_id: UUID,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
    body: TokenCreate = Body(default_factory=TokenCreate),
) -> NewToken:
    return await identities.add_token(session, audit, identity_id, body.ttl)


@router.delete(
    "/identities/{identity_id}/tokens/{token_id}", status_code=204, name="identity.token.revoke"
)
async def revoke_token(
    identity_id: UUID, token_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await identities.revoke_token(session, audit, identity_id, token_id)
    return Response(status_code=204)
