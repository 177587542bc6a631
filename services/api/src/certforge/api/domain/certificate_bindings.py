"""Bindings of an identity to certificates Certforge issued, for mTLS authentication (a
workload renews with its current certificate, like `step ca renew`)."""

from __future__ import annotations

from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.domain.common import by_slug_or_id, commit, get_or_404, of_identity
from certforge.api.schemas.identities import CertificateBindingCreate, CertificateBindingPublic
from certforge.common.db.tables import Identity, IdentityCertificateBinding, Profile
from certforge.common.errors import Conflict, NotFound


def public(binding: IdentityCertificateBinding) -> CertificateBindingPublic:
    return CertificateBindingPublic.model_validate(binding, from_attributes=True)


async def create(
    session: AsyncSession, audit: AuditScope, identity_id: UUID, body: CertificateBindingCreate
) -> CertificateBindingPublic:
    identity = await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    if identity.disabled_at is not None:
        raise Conflict.on_field("identity_id", "the identity is disabled")
    profile = await by_slug_or_id(session, Profile, body.profile, "profile", "profile")
    duplicate = ("name", f"identity {identity.name!r} has a binding named {body.name!r}")
    binding = IdentityCertificateBinding(
        identity_id=identity_id,
        name=body.name,
        profile_id=profile.id,
        common_name=body.common_name,
        san=body.san,
    )
    session.add(binding)
    audit.record(
        session,
        resource_type="identity",
        resource_id=identity_id,
        details={"certificate_binding": body.name, "profile": profile.slug},
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(binding)


async def list_for(session: AsyncSession, identity_id: UUID) -> list[CertificateBindingPublic]:
    rows = await of_identity(session, IdentityCertificateBinding, identity_id)
    return [public(b) for b in rows]


async def delete(
    session: AsyncSession, audit: AuditScope, identity_id: UUID, binding_id: UUID
) -> None:
    binding = await session.get(IdentityCertificateBinding, binding_id)
    if binding is None or binding.identity_id != identity_id:
        raise NotFound.on_field(
            "binding_id", f"no certificate binding {binding_id} for identity {identity_id}"
        )
    await session.delete(binding)
    audit.record(
        session,
        resource_type="identity",
        resource_id=identity_id,
        details={"certificate_binding": binding.name},
        status_code=204,
    )
    await commit(session)
