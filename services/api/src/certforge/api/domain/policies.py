"""Certificate policies: stored as a validated `PolicyDocument`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.domain.common import commit, get_or_404, now
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.domain.profiles import check_defaults
from certforge.api.schemas.common import Page
from certforge.api.schemas.policies import PolicyCreate, PolicyPublic, PolicyUpdate
from certforge.common.db.tables import Policy, Profile
from certforge.common.errors import Conflict, FieldError, PolicyViolation, Unprocessable
from certforge.common.issuance import ProfileDefaults
from certforge.common.policy import PolicyDocument


def document_of(policy: Policy) -> PolicyDocument:
    return PolicyDocument.model_validate(policy.document)


def public(policy: Policy) -> PolicyPublic:
    return PolicyPublic(
        **policy.document,
        id=policy.id,
        name=policy.name,
        description=policy.description,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


def _stored(document: PolicyDocument) -> dict[str, Any]:
    return document.model_dump(mode="json", exclude_none=True)


async def create(session: AsyncSession, audit: AuditScope, body: PolicyCreate) -> PolicyPublic:
    duplicate = ("name", f"a policy named {body.name!r} exists")
    if (await session.exec(select(Policy).where(Policy.name == body.name))).first():
        raise Conflict.on_field(*duplicate)
    policy = Policy(name=body.name, description=body.description, document=_stored(body.document()))
    session.add(policy)
    audit.record(
        session,
        resource_type="policy",
        resource_id=policy.id,
        details={"name": policy.name},
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(policy)


async def list_all(session: AsyncSession, page: PageRequest) -> Page[PolicyPublic]:
    rows, cursor = await keyset_page(
        session,
        select(Policy),
        col(Policy.created_at),
        col(Policy.id),
        page,
        lambda p: (p.created_at, p.id),
    )
    return Page(items=[public(p) for p in rows], next_cursor=cursor)


async def get(session: AsyncSession, policy_id: UUID) -> PolicyPublic:
    return public(await get_or_404(session, Policy, policy_id, "policy", "policy_id"))


async def update(
    session: AsyncSession, audit: AuditScope, policy_id: UUID, body: PolicyUpdate
) -> PolicyPublic:
    """Replace the given rule fields; refuse a change that existing profiles' defaults violate."""
    policy = await get_or_404(session, Policy, policy_id, "policy", "policy_id")
    changes = body.model_dump(exclude_unset=True)
    rules = {k: v for k, v in changes.items() if k not in ("name", "description")}
    try:
        document = PolicyDocument.model_validate({**policy.document, **rules})
    except ValidationError as exc:
        errors = [
            FieldError(
                ".".join(str(p) for p in e["loc"]) or "body",
                e["msg"].removeprefix("Value error, "),
            )
            for e in exc.errors()
        ]
        raise Unprocessable(detail="the updated policy is not valid", errors=errors) from exc
    profiles = await session.exec(select(Profile).where(Profile.policy_id == policy.id))
    for profile in profiles:
        defaults = ProfileDefaults.model_validate(profile.defaults)
        violations = check_defaults(document, defaults)
        if violations:
            raise PolicyViolation(
                detail=f"profile {profile.slug!r} uses this policy and its defaults would violate "
                "it; change the profile first",
                errors=[
                    FieldError(_rule_field(v.field), f"profile {profile.slug!r}: {v.message}")
                    for v in violations
                ],
            )
    if body.name is not None and body.name != policy.name:
        policy.name = body.name
    if body.description is not None:
        policy.description = body.description
    policy.document = _stored(document)
    policy.updated_at = now()
    session.add(policy)
    audit.record(
        session, resource_type="policy", resource_id=policy.id, details={"changed": sorted(changes)}
    )
    await commit(session, duplicate=("name", f"a policy named {body.name!r} exists"))
    return public(policy)


# The policy rule that judges each template field, to name it in a refused PATCH.
_RULE_OF = {
    "key_algorithm": "key_algorithms",
    "signature_hash": "signature_hashes",
    "not_after": "max_validity",
    "is_ca": "allow_ca",
}


def _rule_field(template_field: str) -> str:
    return _RULE_OF.get(template_field, template_field)


async def delete(session: AsyncSession, audit: AuditScope, policy_id: UUID) -> None:
    policy = await get_or_404(session, Policy, policy_id, "policy", "policy_id")
    used = (
        await session.exec(
            select(func.count()).select_from(Profile).where(Profile.policy_id == policy.id)
        )
    ).one()
    if used:
        raise Conflict.on_field("policy_id", f"policy {policy.name!r} is used by {used} profile(s)")
    await session.delete(policy)
    audit.record(
        session,
        resource_type="policy",
        resource_id=policy.id,
        details={"name": policy.name},
        status_code=204,
    )
    await commit(session)
