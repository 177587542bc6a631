"""Revoking, renewing on demand, and changing a certificate's renewal settings.

Revocation is recorded here, in the api's transaction, so that from the moment the caller gets
its answer OCSP says `revoked` and a second revoke is a 409; the issuer, told by a command in
the same transaction, signs the next CRL (coalesced). A manual renewal is a certificate request
of kind `renew` that the issuer signs like any other, after the same early checks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.context import ApiContext
from certforge.api.domain.common import OPERATE_ROLES, application_for
from certforge.api.domain.ocsp import sign_revoked
from certforge.api.domain.requests import RequestRecord, Submitted
from certforge.api.revocation_memory import forget_message
from certforge.api.schemas.lifecycle import CertificateSettings, RenewBody
from certforge.common.contracts.commands import RenewCertificate, RevokeCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import CertificateRevoked
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    Policy,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import (
    CertificateStatus,
    RequestKind,
    RequestMethod,
    RevocationReason,
)
from certforge.common.errors import Conflict, NotFound, Unprocessable
from certforge.common.issuance import IssuingCA, RequestParams, renew_at
from certforge.common.outbox import enqueue
from certforge.common.policy import PolicyDocument
from certforge.common.profile_extensions import ProfileExtensions
from certforge.common.request_rows import new_request_row
from certforge.common.request_rules import (
    Enrollment,
    RenewalAsked,
    RenewedCertificate,
    plan_renewal,
)

SOURCE = "/certforge/api"


async def _locked(
    session: AsyncSession, audit: AuditScope, app_ref: str, certificate_id: UUID
) -> tuple[Certificate, Application]:
    app = await application_for(session, audit.actor, app_ref, OPERATE_ROLES)
    certificate = (
        await session.exec(
            select(Certificate)
            .where(Certificate.id == certificate_id, Certificate.application_id == app.id)
            .with_for_update()
        )
    ).first()
    if certificate is None:
        raise NotFound.on_field(
            "certificate_id", f"no certificate {certificate_id} in {app.slug!r}"
        )
    return certificate, app


async def revoke(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    certificate_id: UUID,
    reason: RevocationReason,
    now: datetime,
) -> tuple[Certificate, Application]:
    certificate, app = await _locked(session, audit, app_ref, certificate_id)
    if certificate.status == CertificateStatus.REVOKED:
        raise Conflict.on_field(
            "certificate_id",
            f"already revoked at {certificate.revoked_at:%Y-%m-%dT%H:%M:%SZ} "
            f"({certificate.revocation_reason})",
        )
    if certificate.status == CertificateStatus.EXPIRED or certificate.not_after <= now:
        raise Unprocessable.on_field("certificate_id", "the certificate has expired")
    await mark_revoked(session, context, certificate, app, reason, now, audit.actor.identity_id)
    audit.record(
        session,
        resource_type="certificate",
        resource_id=certificate.id,
        application_id=app.id,
        details={"reason": reason.value, "serial_number": certificate.serial_number},
    )
    await session.commit()
    context.relay.wake()
    await revoked_everywhere(context, certificate)
    return certificate, app


async def revoked_everywhere(context: ApiContext, certificate: Certificate) -> None:
    """After the commit, before answering: every api replica forgets its `good` answer, so the
    next OCSP request anywhere reads the `revoked` one signed in the transaction."""
    key = (certificate.ca_id, int(certificate.serial_number, 16))
    await context.ocsp.replicas.forget_everywhere(forget_message(key))


async def mark_revoked(
    session: AsyncSession,
    context: ApiContext,
    certificate: Certificate,
    app: Application,
    reason: RevocationReason,
    now: datetime,
    requested_by: UUID | None,
) -> None:
    """Revoke a locked, active certificate in the session's transaction: its status, its OCSP
    answer re-signed `revoked` (served from the commit on, once the caller has made every
    replica forget the old one with `revoked_everywhere`), the `certificate.revoked` event and
    the issuer's revoke command (next CRL). The REST API and ACME's revokeCert both go through
    here; the caller checks, audits and commits."""
    certificate.status = CertificateStatus.REVOKED.value
    certificate.revoked_at = now.replace(microsecond=0)
    certificate.revocation_reason = reason.value
    certificate.updated_at = now
    session.add(certificate)
    await sign_revoked(session, context.ocsp, certificate, now)
    event = CertificateRevoked(
        certificate_id=certificate.id,
        application_id=app.id,
        application=app.slug,
        ca_id=certificate.ca_id,
        serial_number=certificate.serial_number,
        reason=reason.value,
        revoked_at=certificate.revoked_at,
    )
    subject = context.subjects.event(app.slug, CertificateRevoked.event_name)
    enqueue(session, subject, CloudEvent.wrap(event, source=SOURCE, subject=str(certificate.id)))
    command = RevokeCertificate(
        certificate_id=certificate.id,
        application_id=app.id,
        reason=reason.value,
        requested_by=requested_by,
    )
    enqueue(session, context.subjects.cmd_revoke, CloudEvent.wrap(command, source=SOURCE))


async def renew(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    certificate_id: UUID,
    body: RenewBody,
    now: datetime,
) -> Submitted:
    """Check the renewal early with the issuer's own rules, then queue it: the request, the
    certificate's claim on it, the renew command and the audit entry commit together."""
    certificate, app = await _locked(session, audit, app_ref, certificate_id)
    profile = await session.get(Profile, certificate.profile_id)
    assert profile is not None
    attachment = await session.get(ProfileAttachment, (app.id, profile.id))
    ca = await session.get(CertificateAuthority, profile.ca_id)
    policy = await session.get(Policy, profile.policy_id)
    assert ca is not None
    assert policy is not None
    plan_renewal(
        RenewedCertificate.of(certificate),
        RenewalAsked(key=body.key, csr=body.csr, same_key=body.same_key),
        None,
        Enrollment.of(app, profile, attachment, ca),
        PolicyDocument.model_validate(policy.document),
        policy.name,
        IssuingCA.of(ca),
        now,
        ProfileExtensions.model_validate(profile.extensions),
    )
    params = RequestParams(
        method=RequestMethod.CSR if body.csr else RequestMethod.MANAGED,
        key=body.key,
        same_key=body.same_key,
        csr=body.csr,
    )
    request = CertificateRequest(
        **new_request_row(
            id=uuid4(),
            kind=RequestKind.RENEW,
            application_id=app.id,
            profile_id=profile.id,
            params=params,
            now=now,
            renewal_of_id=certificate.id,
            requested_by=audit.actor.identity_id,
        )
    )
    session.add(request)
    certificate.renewing_request_id = request.id
    session.add(certificate)
    command = RenewCertificate(
        request_id=request.id, certificate_id=certificate.id, application_id=app.id
    )
    enqueue(session, context.subjects.cmd_renew, CloudEvent.wrap(command, source=SOURCE))
    audit.record(
        session,
        resource_type="certificate",
        resource_id=certificate.id,
        application_id=app.id,
        details={"renew": body.key.value, "request_id": str(request.id)},
        status_code=202,
    )
    await session.commit()
    context.relay.wake()
    return Submitted(RequestRecord.of(request), app.id, app.slug, profile.slug, replayed=False)


async def update_settings(
    session: AsyncSession,
    audit: AuditScope,
    app_ref: str,
    certificate_id: UUID,
    body: CertificateSettings,
    now: datetime,
) -> tuple[Certificate, Application]:
    certificate, app = await _locked(session, audit, app_ref, certificate_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    validity_days = (certificate.not_after - certificate.not_before) // timedelta(days=1)
    if body.renew_before_days is not None and body.renew_before_days > validity_days - 1:
        raise Unprocessable.on_field(
            "renew_before_days",
            f"must be between 1 and {max(validity_days - 1, 1)} for a {validity_days}-day "
            "certificate",
        )
    if body.auto_renew and certificate.encrypted_private_key is None:
        raise Unprocessable.on_field(
            "auto_renew", "a certificate issued from a CSR is renewed by its client"
        )
    if body.auto_renew is not None:
        certificate.auto_renew = body.auto_renew
    if body.renew_before_days is not None:
        certificate.renew_before_days = body.renew_before_days
        certificate.renew_at = renew_at(
            certificate.not_before, certificate.not_after, body.renew_before_days
        )
    if body.metadata is not None:
        certificate.tags = body.metadata
    certificate.updated_at = now
    session.add(certificate)
    audit.record(
        session,
        resource_type="certificate",
        resource_id=certificate.id,
        application_id=app.id,
        details={"changed": sorted(changes)},
    )
    await session.commit()
    return certificate, app
