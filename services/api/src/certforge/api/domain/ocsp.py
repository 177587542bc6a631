"""Answering OCSP requests: find the CA's current responder and the certificate's status.

Two indexed queries per request (the current responder, the serial); decrypted responders
and CA certificates are remembered per CA in `OcspCache`. Unknown CA, no valid responder and a
CA id that is not even a UUID are all `unauthorized` (RFC 6960 §2.3: "not authorized to
answer for this CA"); a request naming another CA (hashes differ) or a serial we never issued
from this CA is `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.domain.common import as_uuid
from certforge.api.ocsp import (
    GOOD,
    CertId,
    CertStatus,
    Issuer,
    OcspCache,
    Responder,
    Revocation,
    Status,
    build_response,
    parse_request,
    unsuccessful,
)
from certforge.common.crypto.certificates import load_certificate_pem
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import load_stored_private_key
from certforge.common.db.tables import Certificate, CertificateAuthority, OcspResponder
from certforge.common.domain import CertificateStatus, RevocationReason


@dataclass(frozen=True)
class Answer:
    der: bytes
    next_update: datetime | None = None
    """Set on successful answers: how long a cache may keep it."""


async def answer(
    session: AsyncSession,
    cache: OcspCache,
    leaf_keys: KeyRing,
    ca_ref: str,
    request_der: bytes | None,
    now: datetime,
    validity: timedelta,
) -> Answer:
    cert_id = parse_request(request_der) if request_der is not None else None
    if cert_id is None:
        return Answer(unsuccessful(Status.MALFORMED_REQUEST))
    ca_id = as_uuid(ca_ref)
    responder = await current_responder(session, cache, leaf_keys, ca_id, now) if ca_id else None
    if ca_id is None or responder is None:
        return Answer(unsuccessful(Status.UNAUTHORIZED))
    issuer = await issuer_of(session, cache, ca_id)
    status = await status_of(session, ca_id, cert_id) if issuer.named_by(cert_id) else None
    der = build_response(cert_id, status, responder, now, validity)
    return Answer(der, now.replace(microsecond=0) + validity)


async def current_responder(
    session: AsyncSession, cache: OcspCache, leaf_keys: KeyRing, ca_id: UUID, now: datetime
) -> Responder | None:
    """The valid responder of `ca_id` that expires last (the issuer renews at 2/3 of life)."""
    row = (
        await session.exec(
            select(OcspResponder)
            .where(
                OcspResponder.ca_id == ca_id,
                col(OcspResponder.not_before) <= now,
                col(OcspResponder.not_after) > now,
            )
            .order_by(col(OcspResponder.not_after).desc())
            .limit(1)
        )
    ).first()
    if row is None:
        cache.responders.pop(ca_id, None)
        return None
    cached = cache.responders.get(ca_id)
    if cached is not None and cached.id == row.id:
        return cached
    key_der = leaf_keys.decrypt(row.encrypted_private_key, row.id.bytes)
    responder = Responder(
        id=row.id,
        certificate=load_certificate_pem(row.certificate_pem),
        key=load_stored_private_key(key_der),
        not_after=row.not_after,
    )
    cache.responders[ca_id] = responder
    return responder


async def issuer_of(session: AsyncSession, cache: OcspCache, ca_id: UUID) -> Issuer:
    issuer = cache.issuers.get(ca_id)
    if issuer is None:
        ca = await session.get(CertificateAuthority, ca_id)
        assert ca is not None, "a responder row references its CA"
        issuer = cache.issuers[ca_id] = Issuer(load_certificate_pem(ca.certificate_pem))
    return issuer


async def status_of(session: AsyncSession, ca_id: UUID, cert_id: CertId) -> CertStatus:
    """Revoked, good (a leaf or a sub-CA this CA issued) or unknown (`None`)."""
    if cert_id.serial_number <= 0:
        return None
    # Stored as `format(n, "x")` (lower-case, no leading zeros), so equal text = equal integer,
    # and the lookup uses the (ca_id, serial_number) unique index.
    serial = format(cert_id.serial_number, "x")
    row = (
        await session.exec(
            select(
                Certificate.status,
                Certificate.revoked_at,
                Certificate.revocation_reason,
                Certificate.updated_at,
            ).where(Certificate.ca_id == ca_id, Certificate.serial_number == serial)
        )
    ).first()
    if row is not None:
        status, revoked_at, reason, updated_at = row
        if status == CertificateStatus.REVOKED or revoked_at is not None:
            return Revocation(
                revoked_at or updated_at, RevocationReason(reason or RevocationReason.UNSPECIFIED)
            )
        return GOOD
    sub_ca = (
        await session.exec(
            select(CertificateAuthority.id).where(
                CertificateAuthority.parent_id == ca_id,
                CertificateAuthority.serial_number == serial,
            )
        )
    ).first()
    return GOOD if sub_ca is not None else None
