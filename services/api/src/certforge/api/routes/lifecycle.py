from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response

from certforge.api import outcome_response
from certforge.api.deps import AuditDep, ContextDep, SessionDep
from certforge.api.domain import certificates, lifecycle, requests
from certforge.api.rate_limits import IssuanceLimitDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.certificates import CertificatePublic, CertificateRequestPublic
from certforge.api.schemas.lifecycle import CertificateSettings, RenewBody, RevokeBody
from certforge.common.db.tables import Profile

router = APIRouter(prefix=API_PREFIX, tags=["certificates"])


@router.post("/applications/{app}/certificates/{certificate_id}/revoke", name="certificate.revoke")
async def revoke_certificate(
    app: str,
    certificate_id: UUID,
    body: RevokeBody,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
) -> CertificatePublic:
    """Revoke with an RFC 5280 reason. OCSP answers `revoked` at once; the next CRL (within
    seconds) lists it; renewals of it stop. Revoking twice is a 409."""
    certificate, application = await lifecycle.revoke(
        session, context, audit, app, certificate_id, body.reason, datetime.now(UTC)
    )
    profile = await session.get(Profile, certificate.profile_id)
    assert profile is not None
    return certificates.certificate_view(certificate, application, profile)


@router.post(
    "/applications/{app}/certificates/{certificate_id}/renew",
    status_code=202,
    name="certificate.renew",
    responses={
        201: {"model": CertificateRequestPublic, "description": "renewed within Prefer: wait"},
        202: {"model": CertificateRequestPublic, "description": "accepted; poll Location"},
        429: {"description": "too many requests of this identity; see Retry-After"},
    },
)
async def renew_certificate(
    app: str,
    certificate_id: UUID,
    request: Request,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    _limit: IssuanceLimitDep,
    body: RenewBody | None = None,
    prefer: Annotated[str | None, Header(description="RFC 7240, e.g. `wait=10`")] = None,
) -> Response:
    """Renew now: same subject, SANs, usages, profile and metadata; a new key by default
    (`key: reuse` keeps the managed key; `key: csr` takes the caller's CSR, the only way for a
    certificate issued from a CSR). Answers like a certificate request."""
    submitted = await lifecycle.renew(
        session, context, audit, app, certificate_id, body or RenewBody(), datetime.now(UTC)
    )
    return await outcome_response.respond(
        request, context, audit, submitted, requests.prefer_wait(prefer)
    )


@router.patch("/applications/{app}/certificates/{certificate_id}", name="certificate.update")
async def update_certificate(
    app: str,
    certificate_id: UUID,
    body: CertificateSettings,
    session: SessionDep,
    audit: AuditDep,
) -> CertificatePublic:
    """Change `auto_renew`, `renew_before_days` (1 to validity - 1) or `metadata`."""
    certificate, application = await lifecycle.update_settings(
        session, audit, app, certificate_id, body, datetime.now(UTC)
    )
    profile = await session.get(Profile, certificate.profile_id)
    assert profile is not None
    return certificates.certificate_view(certificate, application, profile)
