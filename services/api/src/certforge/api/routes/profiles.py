from __future__ import annotations

from fastapi import APIRouter, Response

from certforge.api.deps import AuditDep, ProductAdminDep, SessionDep
from certforge.api.domain import profiles
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.profiles import ProfileCreate, ProfilePublic, ProfileUpdate

router = APIRouter(prefix=API_PREFIX, tags=["profiles"])


@router.post("/profiles", status_code=201, name="profile.create")
async def create_profile(
    body: ProfileCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> ProfilePublic:
    """Create a profile; its defaults must satisfy its policy."""
    return await profiles.create(session, audit, body)


@router.get("/profiles", name="profile.list")
async def list_profiles(session: SessionDep, _: ProductAdminDep) -> list[ProfilePublic]:
    return await profiles.list_all(session)


@router.get("/profiles/{profile}", name="profile.get")
async def get_profile(profile: str, session: SessionDep, _: ProductAdminDep) -> ProfilePublic:
    return await profiles.get(session, profile)


@router.patch("/profiles/{profile}", name="profile.update")
async def update_profile(
    profile: str, body: ProfileUpdate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> ProfilePublic:
    return await profiles.update(session, audit, profile, body)


@router.delete("/profiles/{profile}", status_code=204, name="profile.delete")
async def delete_profile(
    profile: str, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await profiles.delete(session, audit, profile)
    return Response(status_code=204)
