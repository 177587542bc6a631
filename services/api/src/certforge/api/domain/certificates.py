"""Reading certificates: details, PEM downloads, and managed private keys (audited)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from cryptography import x509
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain.common import OPERATE_ROLES, READ_ROLES, application_for
from certforge.api.domain.requests import RequestRecord, Submitted
from certforge.api.schemas.certificates import (
    CertificatePublic,
    CertificateRequestPublic,
    ExtensionSummary,
    IssuedCertificate,
)
from certforge.common.crypto.certificates import extension_summaries
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.pool import Database
from certforge.common.db.tables import Application, Certificate, Profile
from certforge.common.domain import (
    CertificateStatus,
    KeyAlgorithm,
    RequestMethod,
    RequestStatus,
    Role,
    SignatureHash,
)
from certforge.common.errors import NotFound, Unprocessable
from certforge.common.request_rules import check_active
from certforge.common.template import San


def may_read_keys(actor: Actor, application_id: UUID) -> bool:
    return actor.is_product_admin or actor.role_in(application_id) in OPERATE_ROLES


class HoldsKey(Protocol):
    """A certificate's row as far as its managed key goes (an ORM object or a record)."""

    @property
    def id(self) -> UUID: ...
    @property
    def encrypted_private_key(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """What a request's answer shows of its certificate: plain values (see RequestRecord)."""

    id: UUID
    serial_number: str
    not_before: datetime
    not_after: datetime
    certificate_pem: str
    ca_id: UUID
    encrypted_private_key: bytes | None

    @classmethod
    def of(cls, certificate: Certificate) -> CertificateRecord:
        return cls(*(getattr(certificate, name) for name in cls.__slots__))


def private_key_pem(keys: KeyRing, certificate: HoldsKey) -> str:
    """Decrypt a managed key; the AAD binds the blob to this certificate's row.

    The plaintext is the PKCS#8 DER the issuer wrote (`private_key_to_der`), authenticated by
    AES-GCM, so its PEM is that DER in PEM armour: byte for byte what parsing the key and
    serialising it again gives (a unit test holds them equal), at 1/50 of the CPU (parsing an
    EC key and checking its type cost ≈ 0.25 ms per issued certificate)."""
    assert certificate.encrypted_private_key is not None
    return pkcs8_pem(keys.decrypt(certificate.encrypted_private_key, certificate.id.bytes))


def pkcs8_pem(der: bytes) -> str:
    """PKCS#8 DER as PEM (RFC 7468 `PRIVATE KEY`, 64-character lines)."""
    text = base64.b64encode(der).decode("ascii")
    lines = "".join(text[i : i + 64] + "\n" for i in range(0, len(text), 64))
    return f"-----BEGIN PRIVATE KEY-----\n{lines}-----END PRIVATE KEY-----\n"


_CHAINS: dict[UUID, str] = {}
"""CA id -> its certificate and issuers in PEM. A CA's certificate and chain are written once,
when it is created or imported, and never change: safe to keep for the process's life."""


async def chain_pem(db: Database, ca_id: UUID) -> str:
    """The issuing CA's certificate and its issuers: issuing CA first, root last."""
    chain = _CHAINS.get(ca_id)
    if chain is None:
        chain = await db.fetchval(
            "SELECT certificate_pem || chain_pem FROM certificate_authorities WHERE id = $1", ca_id
        )
        assert chain is not None
        if len(_CHAINS) < 4096:
            _CHAINS[ca_id] = chain
    return chain


async def issued(
    context: ApiContext, certificate: CertificateRecord, *, with_key: bool
) -> IssuedCertificate:
    return IssuedCertificate(
        id=certificate.id,
        serial_number=certificate.serial_number,
        not_before=certificate.not_before,
        not_after=certificate.not_after,
        certificate=certificate.certificate_pem,
        chain=await chain_pem(context.db, certificate.ca_id),
        private_key=(
            private_key_pem(context.leaf_keys, certificate)
            if with_key and certificate.encrypted_private_key is not None
            else None
        ),
    )


async def request_view(
    session: AsyncSession, context: ApiContext, submitted: Submitted, *, with_key: bool
) -> CertificateRequestPublic:
    request = submitted.request
    certificate = None
    if request.status == RequestStatus.ISSUED and request.certificate_id is not None:
        row = await session.get(Certificate, request.certificate_id)
        if row is not None:
            certificate = await issued(context, CertificateRecord.of(row), with_key=with_key)
    return request_public(submitted, request, certificate)


def request_public(
    submitted: Submitted, request: RequestRecord, certificate: IssuedCertificate | None
) -> CertificateRequestPublic:
    return CertificateRequestPublic(
        id=request.id,
        application=submitted.application,
        profile=submitted.profile,
        method=RequestMethod(request.method),
        kind=request.kind,
        status=RequestStatus(request.status),
        error=request.error,
        errors=request.error_details,
        created_at=request.created_at,
        completed_at=request.completed_at,
        certificate_id=request.certificate_id,
        certificate=certificate,
    )


_OUTCOME_SQL = """
WITH request AS (
    SELECT id, method, kind, status, error, error_details, created_at, completed_at,
           certificate_id
    FROM certificate_requests WHERE id = $1
), issued AS (
    SELECT c.id, c.application_id, c.serial_number, c.not_before, c.not_after,
           c.certificate_pem, c.ca_id, c.encrypted_private_key
    FROM certificates c JOIN request r ON c.id = r.certificate_id
    WHERE r.status = 'issued'
), key_read AS (
    INSERT INTO audit_events (occurred_at, actor_id, actor_name, action, resource_type,
                              resource_id, application_id, outcome, status_code, details,
                              request_id)
    SELECT $2, $3, $4, $5, 'certificate', i.id::text, i.application_id, 'success', 200,
           jsonb_build_object('private_key', 'read', 'serial_number', i.serial_number), $6
    FROM issued i WHERE i.encrypted_private_key IS NOT NULL
)
SELECT r.*, i.id AS c_id, i.serial_number AS c_serial_number, i.not_before AS c_not_before,
       i.not_after AS c_not_after, i.certificate_pem AS c_certificate_pem, i.ca_id AS c_ca_id,
       i.encrypted_private_key AS c_encrypted_private_key
FROM request r LEFT JOIN issued i ON true
"""
"""A request's state with its certificate and, when the certificate's managed key is in it, the
audit entry of that key read: one statement, so the key is never handed out unaudited."""


async def outcome_view(
    context: ApiContext, audit: AuditScope, submitted: Submitted
) -> CertificateRequestPublic:
    """The answer to the caller that submitted (or renewed): the request as it is now, with the
    certificate and its managed private key once issued (the caller holds an operating role)."""
    row = await context.db.fetchrow(
        _OUTCOME_SQL,
        submitted.request.id,
        datetime.now(UTC),
        audit.actor.identity_id,
        audit.actor.name,
        audit.action,
        audit.request_id,
    )
    assert row is not None
    certificate = None
    if row["c_id"] is not None:
        stored = CertificateRecord(*(row["c_" + name] for name in CertificateRecord.__slots__))
        certificate = await issued(context, stored, with_key=True)
    return request_public(submitted, RequestRecord.of_row(row), certificate)


def certificate_view(
    certificate: Certificate, app: Application, profile: Profile
) -> CertificatePublic:
    return CertificatePublic(
        id=certificate.id,
        application=app.slug,
        profile=profile.slug,
        ca_id=certificate.ca_id,
        request_id=certificate.request_id,
        method=RequestMethod(certificate.method),
        status=CertificateStatus(certificate.status),
        serial_number=certificate.serial_number,
        subject=certificate.subject_dn,
        common_name=certificate.common_name,
        sans=[San.model_validate(s) for s in certificate.sans],
        key_algorithm=KeyAlgorithm(certificate.key_algorithm),
        signature_algorithm=(
            SignatureHash(certificate.signature_hash) if certificate.signature_hash else None
        ),
        not_before=certificate.not_before,
        not_after=certificate.not_after,
        fingerprint_sha256=certificate.fingerprint_sha256,
        metadata=certificate.tags,
        auto_renew=certificate.auto_renew,
        renew_before_days=certificate.renew_before_days,
        renew_at=certificate.renew_at,
        renewal_error=certificate.renewal_error,
        renewal_attempts=certificate.renewal_attempts,
        has_private_key=certificate.encrypted_private_key is not None,
        extensions=[
            ExtensionSummary(oid=oid, name=name, critical=critical)
            for oid, name, critical in extension_summaries(
                x509.load_pem_x509_certificate(certificate.certificate_pem.encode("ascii"))
            )
        ],
        renewed_from_id=certificate.renewed_from_id,
        renewed_by_id=certificate.renewed_by_id,
        revoked_at=certificate.revoked_at,
        revocation_reason=certificate.revocation_reason,
        early_renewal_requested_at=certificate.early_renewal_requested_at,
        created_at=certificate.created_at,
    )


async def get(
    session: AsyncSession,
    actor: Actor,
    app_ref: str,
    certificate_id: UUID,
    roles: frozenset[Role] = READ_ROLES,
) -> tuple[Certificate, Application, Profile]:
    app = await application_for(session, actor, app_ref, roles)
    row = (
        await session.exec(
            select(Certificate, Profile)
            .join(Profile, col(Profile.id) == col(Certificate.profile_id))
            .where(Certificate.id == certificate_id, Certificate.application_id == app.id)
        )
    ).first()
    if row is None:
        raise NotFound.on_field(
            "certificate_id", f"no certificate {certificate_id} in {app.slug!r}"
        )
    certificate, profile = row
    return certificate, app, profile


async def read_private_key(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    certificate_id: UUID,
) -> str:
    certificate, _, _ = await get(session, audit.actor, app_ref, certificate_id, OPERATE_ROLES)
    if certificate.encrypted_private_key is None:
        raise Unprocessable.on_field(
            "certificate_id", "this certificate's key was never held by Certforge (CSR method)"
        )
    pem = private_key_pem(context.leaf_keys, certificate)
    audit_key_read(session, audit, certificate)
    await session.commit()
    return pem


async def audit_key_delivery(
    session: AsyncSession, audit: AuditScope, view: CertificateRequestPublic
) -> None:
    """Audit a request view that hands out a managed private key (a replayed POST, a GET of
    the request): every response that carries a key is a key read."""
    if view.certificate is None or view.certificate.private_key is None:
        return
    certificate = await session.get(Certificate, view.certificate.id)
    assert certificate is not None
    audit_key_read(session, audit, certificate)
    await session.commit()


def audit_key_read(session: AsyncSession, audit: AuditScope, certificate: Certificate) -> None:
    audit.record(
        session,
        resource_type="certificate",
        resource_id=certificate.id,
        application_id=certificate.application_id,
        details={"private_key": "read", "serial_number": certificate.serial_number},
    )


async def request_early_renewal(
    session: AsyncSession, audit: AuditScope, app_ref: str, certificate_id: UUID, when: datetime
) -> tuple[Certificate, Application, Profile]:
    """Ask for this certificate to be renewed early: its ACME client sees a renewal window that
    opened at `when` (ARI), and an auto-renewed one becomes due for the renewer. Only an active
    certificate can be renewed, with the refusals a manual renewal gets; asking again moves the
    moment to now, which still says "renew now"."""
    certificate, app, profile = await get(
        session, audit.actor, app_ref, certificate_id, OPERATE_ROLES
    )
    check_active(certificate.status, certificate.renewed_by_id)
    if certificate.not_after <= when:
        raise Unprocessable.on_field("certificate_id", "expired; request a new certificate")
    certificate.early_renewal_requested_at = when
    if certificate.auto_renew and certificate.renew_at > when:
        certificate.renew_at = when
    certificate.updated_at = when
    session.add(certificate)
    audit.record(
        session,
        resource_type="certificate",
        resource_id=certificate.id,
        application_id=app.id,
        details={
            "early_renewal_requested_at": when.isoformat(),
            "serial_number": certificate.serial_number,
        },
    )
    await session.commit()
    return certificate, app, profile
