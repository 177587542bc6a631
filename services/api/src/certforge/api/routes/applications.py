from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response
from sqlalchemy import ColumnElement
from sqlmodel import col, select

from certforge.api.deps import ActorDep, AuditDep, ProductAdminDep, SessionDep
from certforge.api.domain import applications
from certforge.api.domain.acme_enrollment import public_origin
from certforge.api.domain.common import READ_ROLES, as_uuid
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.applications import (
    ApiEnrollment,
    ApplicationCreate,
    ApplicationPublic,
    ApplicationUpdate,
    AttachmentPublic,
    AttachmentPut,
    MemberPublic,
    MemberPut,
)
from certforge.api.schemas.common import Page
from certforge.api.versions import IfMatch, guard, tagged
from certforge.common.db.tables import Application, Membership, ProfileAttachment

router = APIRouter(prefix=API_PREFIX, tags=["applications"])


@router.post("/applications", status_code=201, name="application.create")
async def create_application(
    body: ApplicationCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> ApplicationPublic:
    return await applications.create(session, audit, body)


@router.get("/applications", name="application.list")
async def list_applications(
    session: SessionDep, actor: ActorDep, page: PageDep
) -> Page[ApplicationPublic]:
    """All applications for product admins; the caller's own otherwise. Newest first
    (`limit`, `cursor`: the API's one paging convention)."""
    return await applications.list_visible(session, actor, page)


@router.get("/applications/{app}", name="application.get")
async def get_application(
    app: str, session: SessionDep, actor: ActorDep, response: Response
) -> ApplicationPublic:
    """With its `ETag`: send it back in `If-Match` to change it only if nobody did since."""
    return tagged(response, await applications.get(session, actor, app))


@router.patch("/applications/{app}", name="application.update")
async def update_application(
    app: str,
    body: ApplicationUpdate,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
    response: Response,
    if_match: IfMatch = None,
) -> ApplicationPublic:
    """412 when `If-Match` names a version that is no longer current."""
    await guard(
        session,
        if_match,
        lambda: applications.get(session, audit.actor, app),
        lambda a: select(Application).where(col(Application.id) == a.id),
    )
    return tagged(response, await applications.update(session, audit, app, body))


@router.delete("/applications/{app}", status_code=204, name="application.delete")
async def delete_application(
    app: str, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await applications.delete(session, audit, app)
    return Response(status_code=204)


@router.get("/applications/{app}/members", name="application.member.list")
async def list_members(
    app: str, session: SessionDep, actor: ActorDep, page: PageDep
) -> Page[MemberPublic]:
    """Newest membership first (`limit`, `cursor`: the API's one paging convention)."""
    return await applications.members(session, actor, app, page)


@router.put("/applications/{app}/members/{identity_id}", name="application.member.put")
async def put_member(
    app: str,
    identity_id: UUID,
    body: MemberPut,
    session: SessionDep,
    audit: AuditDep,
    response: Response,
    if_match: IfMatch = None,
) -> MemberPublic:
    """Add a member or change its role (application-admin or product-admin). With
    `If-Match` (the `ETag` of `GET …/members/{identity_id}`), only the role read is changed:
    412 if it changed since, 404 if the identity is not a member."""
    await guard(
        session,
        if_match,
        lambda: applications.member(session, audit.actor, app, identity_id),
        lambda m: (
            select(Membership)
            .join(Application, col(Application.id) == col(Membership.application_id))
            .where(col(Membership.identity_id) == m.identity_id, _is_application(app))
        ),
    )
    member, created = await applications.put_member(session, audit, app, identity_id, body.role)
    response.status_code = 201 if created else 200
    return tagged(response, member)


def _is_application(ref: str) -> ColumnElement[bool]:
    """The application named by `ref`, an id or a slug (as `by_slug_or_id` reads it)."""
    row_id = as_uuid(ref)
    return col(Application.id) == row_id if row_id else col(Application.slug) == ref


@router.get("/applications/{app}/members/{identity_id}", name="application.member.get")
async def get_member(
    app: str, identity_id: UUID, session: SessionDep, actor: ActorDep, response: Response
) -> MemberPublic:
    """One member and its role, with the `ETag` that `If-Match` on PUT takes."""
    return tagged(response, await applications.member(session, actor, app, identity_id))


@router.delete(
    "/applications/{app}/members/{identity_id}", status_code=204, name="application.member.delete"
)
async def delete_member(
    app: str, identity_id: UUID, session: SessionDep, audit: AuditDep
) -> Response:
    await applications.remove_member(session, audit, app, identity_id)
    return Response(status_code=204)


@router.get("/applications/{app}/profiles", name="application.profile.list")
async def list_attached_profiles(
    app: str, request: Request, session: SessionDep, actor: ActorDep
) -> list[AttachmentPublic]:
    return await applications.attachments(session, actor, app, public_origin(request))


@router.get("/applications/{app}/profiles/{profile}", name="application.profile.get")
async def get_attached_profile(
    app: str,
    profile: str,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
) -> AttachmentPublic:
    """With its `ETag`: send it back in `If-Match` to change it only if nobody did since."""
    origin = public_origin(request)
    return tagged(response, await applications.get_attachment(session, actor, app, profile, origin))


@router.put("/applications/{app}/profiles/{profile}", name="application.profile.attach")
async def attach_profile(
    app: str,
    profile: str,
    request: Request,
    session: SessionDep,
    audit: AuditDep,
    response: Response,
    _: ProductAdminDep,
    body: AttachmentPut | None = None,
    if_match: IfMatch = None,
) -> AttachmentPublic:
    """Attach a profile to the application (idempotent: 201 the first time, then 200),
    optionally with its API and ACME enrollment settings (`{"api": {"enabled": true}}`,
    `{"acme": {"enabled": true}}`). With `If-Match`, only the attachment read is changed: 412
    if it changed since, 404 if the profile is not attached."""
    await guard(
        session,
        if_match,
        lambda: applications.get_attachment(
            session, audit.actor, app, profile, public_origin(request)
        ),
        lambda a: select(ProfileAttachment).where(
            col(ProfileAttachment.application_id) == a.application_id,
            col(ProfileAttachment.profile_id) == a.profile_id,
        ),
    )
    attachment, created = await applications.attach(
        session,
        audit,
        app,
        profile,
        public_origin(request),
        body.api if body else None,
        body.acme if body else None,
    )
    response.status_code = 201 if created else 200
    return tagged(response, attachment)


@router.delete(
    "/applications/{app}/profiles/{profile}", status_code=204, name="application.profile.detach"
)
async def detach_profile(
    app: str, profile: str, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await applications.detach(session, audit, app, profile)
    return Response(status_code=204)


@router.put(
    "/applications/{app}/profiles/{profile}/enrollment/api",
    name="application.enrollment.api.put",
)
async def put_api_enrollment(
    app: str,
    profile: str,
    body: ApiEnrollment,
    request: Request,
    session: SessionDep,
    audit: AuditDep,
) -> AttachmentPublic:
    """API enrollment on an attached profile (application-admin or product-admin)."""
    return await applications.put_api_enrollment(
        session, audit, app, profile, body, public_origin(request)
    )


@router.get(
    "/applications/{app}/profiles/{profile}/enrollment/api",
    name="application.enrollment.api.get",
)
async def get_api_enrollment(
    app: str, profile: str, session: SessionDep, actor: ActorDep
) -> ApiEnrollment:
    _, _, attachment = await applications.attached(session, actor, app, profile, READ_ROLES)
    return applications.api_enrollment(attachment)
