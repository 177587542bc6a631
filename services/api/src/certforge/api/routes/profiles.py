from __future__ import annotations

from fastapi import APIRouter, Response
from sqlmodel import col, select

from certforge.api.deps import AuditDep, ProductAdminDep, SessionDep
from certforge.api.domain import profiles
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.common import Page
from certforge.api.schemas.profiles import ProfileCreate, ProfilePublic, ProfileUpdate
from certforge.api.versions import IfMatch, guard, tagged
from certforge.common.db.tables import Profile

router = APIRouter(prefix=API_PREFIX, tags=["profiles"])


@router.post("/profiles", status_code=201, name="profile.create")
async def create_profile(
    body: ProfileCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> ProfilePublic:
    """Create a profile; its defaults must satisfy its policy."""
    return await profiles.create(session, audit, body)


@router.get("/profiles", name="profile.list")
async def list_profiles(
    session: SessionDep, _: ProductAdminDep, page: PageDep
) -> Page[ProfilePublic]:
    """Newest first (`limit`, `cursor`: the API's one paging convention)."""
    return await profiles.list_all(session, page)


@router.get("/profiles/{profile}", name="profile.get")
async def get_profile(
    profile: str, session: SessionDep, _: ProductAdminDep, response: Response
) -> ProfilePublic:
    """With its `ETag`: send it back in `If-Match` to change it only if nobody did since."""
    return tagged(response, await profiles.get(session, profile))


@router.patch("/profiles/{profile}", name="profile.update")
async def update_profile(
    profile: str,
    body: ProfileUpdate,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProfilePublic:
    """412 when `If-Match` names a version that is no longer current."""
    await guard(
        session,
        if_match,
        lambda: profiles.get(session, profile),
        lambda p: select(Profile).where(col(Profile.id) == p.id),
    )
    return tagged(response, await profiles.update(session, audit, profile, body))


@router.delete("/profiles/{profile}", status_code=204, name="profile.delete")
async def delete_profile(
    profile: str, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await profiles.delete(session, audit, profile)
    return Response(status_code=204)
