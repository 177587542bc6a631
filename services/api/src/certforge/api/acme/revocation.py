"""revokeCert (RFC 8555 §7.6), through the REST API's revocation path (`mark_revoked`), so
OCSP, the CRL, the `certificate.revoked` event and syncs follow as for any revocation.

Who may revoke (RFC 8555 §7.6): the account that ordered the certificate, or an account holding
valid authorizations for all its names (signed with its `kid`); or whoever holds the
certificate's key (signed with a `jwk` that is the certificate's public key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.acme import audit
from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import AcmeProblem, malformed, not_found, unauthorized
from certforge.api.acme.signed import Signed
from certforge.api.context import ApiContext
from certforge.api.domain.lifecycle import mark_revoked, revoked_everywhere
from certforge.common.acme import ErrorType, b64url_decode
from certforge.common.crypto.certificates import fingerprint_sha256
from certforge.common.db.tables import (
    AcmeAuthorization,
    AcmeOrder,
    Application,
    AuditEvent,
    Certificate,
)
from certforge.common.domain import CertificateStatus, RevocationReason

REASONS: dict[int, RevocationReason] = {
    0: RevocationReason.UNSPECIFIED,
    1: RevocationReason.KEY_COMPROMISE,
    2: RevocationReason.CA_COMPROMISE,
    3: RevocationReason.AFFILIATION_CHANGED,
    4: RevocationReason.SUPERSEDED,
    5: RevocationReason.CESSATION_OF_OPERATION,
    6: RevocationReason.CERTIFICATE_HOLD,
    9: RevocationReason.PRIVILEGE_WITHDRAWN,
    10: RevocationReason.AA_COMPROMISE,
}
"""RFC 5280 CRLReason codes a subscriber may give; 7 is unassigned and 8 (removeFromCRL)
only exists in delta CRLs."""


def reason_of(value: object) -> RevocationReason:
    if value is None:
        return RevocationReason.UNSPECIFIED
    if isinstance(value, bool) or not isinstance(value, int) or value not in REASONS:
        raise AcmeProblem(
            ErrorType.BAD_REVOCATION_REASON,
            f"reason {value!r} is not a revocation reason code (0-6, 9, 10)",
        )
    return REASONS[value]


def parse_certificate(payload: dict[str, Any]) -> x509.Certificate:
    text = payload.get("certificate")
    if not isinstance(text, str):
        raise malformed("revokeCert needs 'certificate' (base64url DER)")
    try:
        return x509.load_der_x509_certificate(b64url_decode(text))
    except ValueError:
        raise malformed("'certificate' is not a base64url DER certificate") from None


async def revoke(
    context: ApiContext,
    target: AcmeTarget,
    signed: Signed,
    now: datetime,
    request_id: str | None,
) -> None:
    payload = signed.payload()
    reason = reason_of(payload.get("reason"))
    cert = parse_certificate(payload)
    async with context.sessions() as session:
        certificate = (
            await session.exec(
                select(Certificate)
                .where(
                    Certificate.fingerprint_sha256 == fingerprint_sha256(cert),
                    Certificate.application_id == target.app_id,
                )
                .with_for_update()
            )
        ).first()
        if certificate is None:
            raise not_found("no certificate of this application is that certificate")
        if signed.account is not None:
            ordered = (
                await session.exec(
                    select(AcmeOrder.id).where(
                        AcmeOrder.certificate_id == certificate.id,
                        AcmeOrder.account_id == signed.account["id"],
                    )
                )
            ).first()
            if ordered is None and not await _authorized_for(session, signed, cert, now):
                raise unauthorized(
                    "this account neither ordered this certificate nor holds valid "
                    "authorizations for all its names"
                )
            actor = audit.actor_name(signed.account["id"])
        else:
            if _spki(cert.public_key()) != _spki(signed.key.raw_value):
                raise unauthorized("the JWS key is not this certificate's key")
            actor = "acme-certificate-key"
        if certificate.status == CertificateStatus.REVOKED:
            raise AcmeProblem(ErrorType.ALREADY_REVOKED, "the certificate is already revoked")
        if certificate.status == CertificateStatus.EXPIRED or certificate.not_after <= now:
            raise unauthorized("the certificate has expired")
        app = await session.get(Application, target.app_id)
        assert app is not None
        await mark_revoked(session, context, certificate, app, reason, now, None)
        session.add(
            AuditEvent(
                occurred_at=now,
                actor_name=actor,
                action="acme.certificate.revoke",
                resource_type="certificate",
                resource_id=str(certificate.id),
                application_id=app.id,
                outcome="success",
                status_code=200,
                details={"reason": reason.value, "serial_number": certificate.serial_number},
                request_id=request_id,
            )
        )
        await session.commit()
    context.relay.wake()
    await revoked_everywhere(context, certificate)


def names_of(cert: x509.Certificate) -> set[tuple[str, str]]:
    """The certificate's identifiers as ACME names them: (dns, name) and (ip, address)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = {("dns", str(n).lower()) for n in sans.get_values_for_type(x509.DNSName)}
    ips = {("ip", str(a)) for a in sans.get_values_for_type(x509.IPAddress)}
    return dns | ips


def covered(names: set[tuple[str, str]], authorized: set[tuple[str, str, bool]]) -> bool:
    """Whether valid authorizations prove every name (a wildcard name needs a wildcard
    authorization of its base domain, RFC 8555 §7.1.4)."""
    if not names:
        return False
    for kind, value in names:
        wildcard = value.startswith("*.")
        if (kind, value.removeprefix("*."), wildcard) not in authorized:
            return False
    return True


async def _authorized_for(
    session: AsyncSession, signed: Signed, cert: x509.Certificate, now: datetime
) -> bool:
    """RFC 8555 §7.6: an account holding valid authorizations for all the certificate's
    identifiers may revoke it, even if another account ordered it."""
    assert signed.account is not None
    rows = await session.exec(
        select(
            AcmeAuthorization.identifier_type,
            AcmeAuthorization.identifier_value,
            AcmeAuthorization.wildcard,
        ).where(
            AcmeAuthorization.account_id == signed.account["id"],
            AcmeAuthorization.status == "valid",
            col(AcmeAuthorization.expires_at) > now,
        )
    )
    return covered(names_of(cert), {(t, v, bool(w)) for t, v, w in rows})


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
