"""Certificate profiles: a CA, a policy, and defaults that must satisfy the policy."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.domain.common import as_uuid, by_slug_or_id, commit, get_or_404, now
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.schemas.common import Page
from certforge.api.schemas.profiles import ProfileCreate, ProfilePublic, ProfileUpdate
from certforge.common.db.tables import (
    Certificate,
    CertificateAuthority,
    Policy,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import CAStatus
from certforge.common.errors import Conflict, FieldError, PolicyViolation, Unprocessable
from certforge.common.issuance import ProfileDefaults
from certforge.common.name_constraint_rules import name_violations
from certforge.common.name_constraints import chain_constraints
from certforge.common.policy import PolicyDocument, Violation, evaluate
from certforge.common.profile_extensions import ProfileExtensions
from certforge.common.template import CertificateTemplate

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def public(profile: Profile) -> ProfilePublic:
    return ProfilePublic(
        id=profile.id,
        slug=profile.slug,
        name=profile.name,
        description=profile.description,
        ca_id=profile.ca_id,
        policy_id=profile.policy_id,
        defaults=ProfileDefaults.model_validate(profile.defaults),
        extensions=ProfileExtensions.model_validate(profile.extensions),
        created_at=profile.created_at,
        updated_at=profile.updated_at,
    )


def _defaults_template(defaults: ProfileDefaults) -> CertificateTemplate:
    return CertificateTemplate(
        subject=defaults.subject,
        key_algorithm=defaults.key_algorithm,
        signature_hash=defaults.signature_algorithm,
        key_usages=defaults.key_usages,
        extended_key_usages=defaults.extended_key_usages,
        not_before=_EPOCH,
        not_after=_EPOCH + defaults.ttl,
    )


def check_defaults(policy: PolicyDocument, defaults: ProfileDefaults) -> list[Violation]:
    """Violations of `policy` by what the defaults decide on their own.

    Rules a request must fill in (required SANs, required subject attributes the defaults do
    not set) are the request's business and are checked at issuance, not here.
    """
    template = _defaults_template(defaults)
    set_attributes = {f"subject.{name}" for name in defaults.subject.present()}
    return [
        v
        for v in evaluate(policy, template)
        if not v.field.startswith("sans")
        and (not v.field.startswith("subject.") or v.field in set_attributes)
    ]


def _defaults_field(violation: Violation) -> str:
    renamed = {"signature_hash": "signature_algorithm", "not_after": "ttl"}
    return "defaults." + renamed.get(violation.field, violation.field)


async def _validate(
    session: AsyncSession,
    ca_id: UUID,
    policy_id: UUID,
    defaults: ProfileDefaults,
    *,
    new_ca: bool = True,
) -> None:
    """Refuse an unknown CA or policy, defaults the policy refuses, or moving to a disabled CA.

    A profile already on a CA that was disabled later may still be edited (`new_ca=False`).
    """
    ca = await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    if new_ca and ca.status != CAStatus.ACTIVE:
        raise Unprocessable.on_field("ca_id", f"CA {ca.name!r} is disabled")
    policy = await get_or_404(session, Policy, policy_id, "policy", "policy_id")
    violations = check_defaults(PolicyDocument.model_validate(policy.document), defaults)
    # The defaults' subject (a host-name CN, the DN) must also fit the CA chain's constraints.
    violations += name_violations(
        _defaults_template(defaults),
        chain_constraints(ca.name_constraints, ca.chain_name_constraints),
    )
    if violations:
        raise PolicyViolation(
            detail=f"the defaults violate policy {policy.name!r} or CA {ca.name!r}: "
            + "; ".join(v.message for v in violations),
            errors=[FieldError(_defaults_field(v), v.message) for v in violations],
        )


async def create(session: AsyncSession, audit: AuditScope, body: ProfileCreate) -> ProfilePublic:
    if as_uuid(body.slug):
        raise Unprocessable.on_field("slug", "a slug must not look like a UUID")
    duplicate = ("slug", f"a profile with slug {body.slug!r} exists")
    if (await session.exec(select(Profile).where(Profile.slug == body.slug))).first():
        raise Conflict.on_field(*duplicate)
    await _validate(session, body.ca_id, body.policy_id, body.defaults)
    profile = Profile(
        slug=body.slug,
        name=body.name,
        description=body.description,
        ca_id=body.ca_id,
        policy_id=body.policy_id,
        defaults=body.defaults.model_dump(mode="json"),
        extensions=body.extensions.model_dump(mode="json"),
    )
    session.add(profile)
    audit.record(
        session,
        resource_type="profile",
        resource_id=profile.id,
        details={"slug": profile.slug},
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(profile)


async def list_all(session: AsyncSession, page: PageRequest) -> Page[ProfilePublic]:
    rows, cursor = await keyset_page(
        session,
        select(Profile),
        col(Profile.created_at),
        col(Profile.id),
        page,
        lambda p: (p.created_at, p.id),
    )
    return Page(items=[public(p) for p in rows], next_cursor=cursor)


async def get(session: AsyncSession, ref: str) -> ProfilePublic:
    return public(await by_slug_or_id(session, Profile, ref, "profile", "profile"))


async def update(
    session: AsyncSession, audit: AuditScope, ref: str, body: ProfileUpdate
) -> ProfilePublic:
    profile: Profile = await by_slug_or_id(session, Profile, ref, "profile", "profile")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    defaults = body.defaults or ProfileDefaults.model_validate(profile.defaults)
    await _validate(
        session,
        body.ca_id or profile.ca_id,
        body.policy_id or profile.policy_id,
        defaults,
        new_ca=body.ca_id is not None and body.ca_id != profile.ca_id,
    )
    profile.name = body.name if body.name is not None else profile.name
    profile.description = body.description if body.description is not None else profile.description
    profile.ca_id = body.ca_id or profile.ca_id
    profile.policy_id = body.policy_id or profile.policy_id
    profile.defaults = defaults.model_dump(mode="json")
    if body.extensions is not None:
        profile.extensions = body.extensions.model_dump(mode="json")
    profile.updated_at = now()
    session.add(profile)
    audit.record(
        session,
        resource_type="profile",
        resource_id=profile.id,
        details={"changed": sorted(changes)},
    )
    await commit(session)
    return public(profile)


async def delete(session: AsyncSession, audit: AuditScope, ref: str) -> None:
    profile: Profile = await by_slug_or_id(session, Profile, ref, "profile", "profile")
    for model, what in ((ProfileAttachment, "application(s)"), (Certificate, "certificate(s)")):
        count = (
            await session.exec(
                select(func.count()).select_from(model).where(model.profile_id == profile.id)
            )
        ).one()
        if count:
            raise Conflict.on_field(
                "profile", f"profile {profile.slug!r} is used by {count} {what}"
            )
    await session.delete(profile)
    audit.record(
        session,
        resource_type="profile",
        resource_id=profile.id,
        details={"slug": profile.slug},
        status_code=204,
    )
    await commit(session)
