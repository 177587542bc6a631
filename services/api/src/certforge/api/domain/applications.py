"""Applications (tenants), their members, attached profiles and enrollment settings."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.domain import acme_enrollment
from certforge.api.domain.common import (
    ADMIN_ROLES,
    READ_ROLES,
    application_for,
    as_uuid,
    by_slug_or_id,
    commit,
    get_or_404,
    now,
)
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.schemas.acme import AcmeEnrollment
from certforge.api.schemas.applications import (
    ApiEnrollment,
    ApplicationCreate,
    ApplicationPublic,
    ApplicationUpdate,
    AttachmentPublic,
    MemberPublic,
)
from certforge.api.schemas.common import Page
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateRequest,
    Identity,
    Membership,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import Role
from certforge.common.errors import Conflict, Forbidden, NotFound, Unprocessable


def public(app: Application) -> ApplicationPublic:
    return ApplicationPublic.model_validate(app, from_attributes=True)


async def create(
    session: AsyncSession, audit: AuditScope, body: ApplicationCreate
) -> ApplicationPublic:
    if as_uuid(body.slug):
        raise Unprocessable.on_field("slug", "a slug must not look like a UUID")
    duplicate = ("slug", f"an application with slug {body.slug!r} exists")
    if (await session.exec(select(Application).where(Application.slug == body.slug))).first():
        raise Conflict.on_field(*duplicate)
    app = Application(slug=body.slug, name=body.name, description=body.description)
    session.add(app)
    audit.record(
        session,
        resource_type="application",
        resource_id=app.id,
        application_id=app.id,
        details={"slug": app.slug},
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(app)


async def list_visible(
    session: AsyncSession, actor: Actor, page: PageRequest
) -> Page[ApplicationPublic]:
    query = select(Application)
    if not actor.is_product_admin:
        query = query.where(col(Application.id).in_(list(actor.roles)))
    rows, cursor = await keyset_page(
        session,
        query,
        col(Application.created_at),
        col(Application.id),
        page,
        lambda a: (a.created_at, a.id),
    )
    return Page(items=[public(a) for a in rows], next_cursor=cursor)


async def get(session: AsyncSession, actor: Actor, ref: str) -> ApplicationPublic:
    return public(await application_for(session, actor, ref, READ_ROLES))


async def update(
    session: AsyncSession, audit: AuditScope, ref: str, body: ApplicationUpdate
) -> ApplicationPublic:
    app = await application_for(session, audit.actor, ref, ())
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    for name, value in changes.items():
        setattr(app, name, value)
    app.updated_at = now()
    session.add(app)
    audit.record(
        session,
        resource_type="application",
        resource_id=app.id,
        application_id=app.id,
        details={"changed": sorted(changes)},
    )
    await commit(session)
    return public(app)


async def delete(session: AsyncSession, audit: AuditScope, ref: str) -> None:
    app = await application_for(session, audit.actor, ref, ())
    for model, what in (
        (Certificate, "certificates"),
        (CertificateRequest, "certificate requests"),
    ):
        count = (
            await session.exec(
                select(func.count()).select_from(model).where(model.application_id == app.id)
            )
        ).one()
        if count:
            raise Conflict.on_field("app", f"application {app.slug!r} still has {count} {what}")
    audit.record(
        session,
        resource_type="application",
        resource_id=app.id,
        details={"slug": app.slug},
        status_code=204,
    )
    await session.delete(app)
    await commit(session)


async def members(
    session: AsyncSession, actor: Actor, ref: str, page: PageRequest
) -> Page[MemberPublic]:
    app = await application_for(session, actor, ref, READ_ROLES)
    query = (
        select(Membership, Identity)
        .join(Identity, col(Identity.id) == col(Membership.identity_id))
        .where(Membership.application_id == app.id)
    )
    rows, cursor = await keyset_page(
        session,
        query,
        col(Membership.created_at),
        col(Membership.identity_id),
        page,
        lambda row: (row[0].created_at, row[0].identity_id),
    )
    items = [
        MemberPublic(identity_id=i.id, name=i.name, role=Role(m.role), created_at=m.created_at)
        for m, i in rows
    ]
    return Page(items=items, next_cursor=cursor)


async def _visible_identity(session: AsyncSession, actor: Actor, identity_id: UUID) -> Identity:
    """The identity `actor` may name in a membership, or the 404 of an unknown id.

    A product admin knows every identity. Anyone else knows only the identities it shares an
    application with (their names are in that application's member list already): adding an
    identity by id would otherwise tell its name, and whether the id exists at all.
    """
    identity = await session.get(Identity, identity_id)
    if identity is not None and not actor.is_product_admin:
        shared = await session.exec(
            select(Membership.application_id).where(
                Membership.identity_id == identity_id,
                col(Membership.application_id).in_(list(actor.roles)),
            )
        )
        if shared.first() is None:
            identity = None
    if identity is None:
        raise NotFound.on_field("identity_id", f"no identity with id {identity_id}")
    return identity


def _may_manage(actor: Actor, identity: Identity) -> None:
    """A product admin's memberships are set by product admins only: an application admin
    must not lower the role of, or remove, someone above it."""
    if identity.is_product_admin and not actor.is_product_admin:
        raise Forbidden.on_field(
            "identity_id", "only a product admin changes a product admin's membership"
        )


async def put_member(
    session: AsyncSession, audit: AuditScope, ref: str, identity_id: UUID, role: Role
) -> tuple[MemberPublic, bool]:
    app = await application_for(session, audit.actor, ref, ADMIN_ROLES)
    identity = await _visible_identity(session, audit.actor, identity_id)
    _may_manage(audit.actor, identity)
    if identity.disabled_at is not None:
        raise Unprocessable.on_field("identity_id", "the identity is disabled")
    membership = await session.get(Membership, (app.id, identity_id))
    created = membership is None
    if membership is None:
        membership = Membership(application_id=app.id, identity_id=identity_id, role=role)
    membership.role = role
    session.add(membership)
    audit.record(
        session,
        resource_type="membership",
        resource_id=identity_id,
        application_id=app.id,
        details={"role": role.value},
        status_code=201 if created else 200,
    )
    await commit(session)
    member = MemberPublic(
        identity_id=identity.id, name=identity.name, role=role, created_at=membership.created_at
    )
    return member, created


async def member(session: AsyncSession, actor: Actor, ref: str, identity_id: UUID) -> MemberPublic:
    """One member of the application, as its members list shows it."""
    app = await application_for(session, actor, ref, READ_ROLES)
    membership = await session.get(Membership, (app.id, identity_id))
    identity = await session.get(Identity, identity_id)
    if membership is None or identity is None:
        raise NotFound.on_field("identity_id", f"{identity_id} is not a member of {app.slug!r}")
    return MemberPublic(
        identity_id=identity.id,
        name=identity.name,
        role=Role(membership.role),
        created_at=membership.created_at,
    )


async def remove_member(
    session: AsyncSession, audit: AuditScope, ref: str, identity_id: UUID
) -> None:
    app = await application_for(session, audit.actor, ref, ADMIN_ROLES)
    membership = await session.get(Membership, (app.id, identity_id))
    if membership is None:
        raise NotFound.on_field("identity_id", f"{identity_id} is not a member of {app.slug!r}")
    identity = await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    _may_manage(audit.actor, identity)
    await session.delete(membership)
    audit.record(
        session,
        resource_type="membership",
        resource_id=identity_id,
        application_id=app.id,
        status_code=204,
    )
    await commit(session)


def attachment_public(
    attachment: ProfileAttachment, app: Application, profile: Profile, origin: str
) -> AttachmentPublic:
    """`origin` (scheme and host the caller used) makes the ACME directory URL absolute."""
    return AttachmentPublic(
        application_id=attachment.application_id,
        profile_id=profile.id,
        profile=profile.slug,
        api=api_enrollment(attachment),
        acme=acme_enrollment.public(attachment, app.slug, profile.slug, origin),
        acme_enabled=attachment.acme_enabled,
        created_at=attachment.created_at,
        updated_at=attachment.updated_at,
    )


async def attachments(
    session: AsyncSession, actor: Actor, ref: str, origin: str
) -> list[AttachmentPublic]:
    app = await application_for(session, actor, ref, READ_ROLES)
    rows = await session.exec(
        select(ProfileAttachment, Profile)
        .join(Profile, col(Profile.id) == col(ProfileAttachment.profile_id))
        .where(ProfileAttachment.application_id == app.id)
        .order_by(col(Profile.slug))
    )
    return [attachment_public(a, app, p, origin) for a, p in rows]


async def _attachment(
    session: AsyncSession, actor: Actor, ref: str, profile_ref: str, roles: frozenset[Role]
) -> tuple[Application, Profile, ProfileAttachment | None]:
    app = await application_for(session, actor, ref, roles)
    profile: Profile = await by_slug_or_id(session, Profile, profile_ref, "profile", "profile")
    return app, profile, await session.get(ProfileAttachment, (app.id, profile.id))


async def get_attachment(
    session: AsyncSession, actor: Actor, ref: str, profile_ref: str, origin: str
) -> AttachmentPublic:
    app, profile, attachment = await attached(session, actor, ref, profile_ref, READ_ROLES)
    return attachment_public(attachment, app, profile, origin)


async def attached(
    session: AsyncSession, actor: Actor, ref: str, profile_ref: str, roles: frozenset[Role]
) -> tuple[Application, Profile, ProfileAttachment]:
    """The attachment of `profile_ref` to `ref` if `actor` may act on it with `roles`; a
    profile that exists but is not attached is a 404 on `profile`, like one that does not."""
    app, profile, attachment = await _attachment(session, actor, ref, profile_ref, roles)
    if attachment is None:
        raise NotFound.on_field(
            "profile", f"profile {profile.slug!r} is not attached to {app.slug!r}"
        )
    return app, profile, attachment


async def attach(
    session: AsyncSession,
    audit: AuditScope,
    ref: str,
    profile_ref: str,
    origin: str,
    api: ApiEnrollment | None = None,
    acme: AcmeEnrollment | None = None,
) -> tuple[AttachmentPublic, bool]:
    """Attach (idempotent), optionally setting API and ACME enrollment in the same call, so a
    profile can be ready for requests in one step instead of two."""
    app, profile, attachment = await _attachment(
        session, audit.actor, ref, profile_ref, frozenset()
    )
    created = attachment is None
    if attachment is None:
        attachment = ProfileAttachment(application_id=app.id, profile_id=profile.id)
    elif (api is None or api_enrollment(attachment) == api) and (
        acme is None or acme_enrollment.settings_of(attachment) == acme
    ):
        return attachment_public(attachment, app, profile, origin), False
    details: dict[str, object] = {"profile": profile.slug}
    if api is not None:
        _set_api_enrollment(attachment, api)
        details["api"] = api.model_dump()
    if acme is not None:
        acme_enrollment.apply(attachment, acme)
        details["acme"] = acme.model_dump(mode="json")
    session.add(attachment)
    audit.record(
        session,
        resource_type="attachment",
        resource_id=profile.id,
        application_id=app.id,
        details=details,
        status_code=201 if created else 200,
    )
    await commit(session)
    return attachment_public(attachment, app, profile, origin), created


def api_enrollment(attachment: ProfileAttachment) -> ApiEnrollment:
    return ApiEnrollment(
        enabled=attachment.api_enabled,
        auto_renew=attachment.api_auto_renew,
        renew_before_days=attachment.api_renew_before_days,
    )


def _set_api_enrollment(attachment: ProfileAttachment, api: ApiEnrollment) -> None:
    attachment.api_enabled = api.enabled
    attachment.api_auto_renew = api.auto_renew
    attachment.api_renew_before_days = api.renew_before_days
    attachment.updated_at = now()


async def detach(session: AsyncSession, audit: AuditScope, ref: str, profile_ref: str) -> None:
    app, profile, attachment = await _attachment(
        session, audit.actor, ref, profile_ref, frozenset()
    )
    if attachment is None:
        raise NotFound.on_field(
            "profile", f"profile {profile.slug!r} is not attached to {app.slug!r}"
        )
    await session.delete(attachment)
    audit.record(
        session,
        resource_type="attachment",
        resource_id=profile.id,
        application_id=app.id,
        details={"profile": profile.slug},
        status_code=204,
    )
    await commit(session)


async def put_api_enrollment(
    session: AsyncSession,
    audit: AuditScope,
    ref: str,
    profile_ref: str,
    body: ApiEnrollment,
    origin: str,
) -> AttachmentPublic:
    app, profile, attachment = await _attachment(
        session, audit.actor, ref, profile_ref, ADMIN_ROLES
    )
    if attachment is None:
        raise NotFound.on_field(
            "profile", f"profile {profile.slug!r} is not attached to {app.slug!r}; attach it first"
        )
    _set_api_enrollment(attachment, body)
    session.add(attachment)
    audit.record(
        session,
        resource_type="attachment",
        resource_id=profile.id,
        application_id=app.id,
        details=body.model_dump(),
    )
    await commit(session)
    return attachment_public(attachment, app, profile, origin)
