from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response

from certforge.api import outcome_response
from certforge.api.deps import ActorDep, AuditDep, ContextDep, SessionDep
from certforge.api.domain import certificates, requests
from certforge.api.rate_limits import IssuanceLimitDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.certificates import (
    CertificatePublic,
    CertificateRequestCreate,
    CertificateRequestPublic,
)
from certforge.api.schemas.common import Page
from certforge.common.domain import RequestStatus

router = APIRouter(prefix=API_PREFIX, tags=["certificates"])

PEM = "application/x-pem-file"
_PEM_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {PEM: {}}, "description": "PEM"}}


@router.post(
    "/applications/{app}/certificate-requests",
    status_code=202,
    name="certificate_request.create",
    responses={
        201: {"model": CertificateRequestPublic, "description": "issued within Prefer: wait"},
        202: {"model": CertificateRequestPublic, "description": "accepted; poll Location"},
        429: {"description": "too many requests of this identity; see Retry-After"},
    },
)
async def create_certificate_request(
    app: str,
    body: CertificateRequestCreate,
    request: Request,
    audit: AuditDep,
    context: ContextDep,
    _limit: IssuanceLimitDep,
    prefer: Annotated[str | None, Header(description="RFC 7240, e.g. `wait=10`")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="same key + same body = same request",
        ),
    ] = None,
) -> Response:
    """Request a certificate: `managed` (Certforge generates the key) or `csr`.

    Answers 202 with the pending request, or 201 with the certificate when `Prefer: wait=N`
    (N ≤ 60) was sent and it was issued in time. The private key of a managed certificate is in
    the response (PKCS#8 PEM); keep it secret.
    """
    submitted = await requests.submit(context, audit, app, body, idempotency_key, datetime.now(UTC))
    return await outcome_response.respond(
        request, context, audit, submitted, requests.prefer_wait(prefer)
    )


@router.get("/applications/{app}/certificate-requests/{request_id}", name="certificate_request.get")
async def get_certificate_request(
    app: str, request_id: UUID, session: SessionDep, audit: AuditDep, context: ContextDep
) -> CertificateRequestPublic:
    """The request and, once issued, its certificate (with the managed key for operators)."""
    submitted = await requests.get(session, audit.actor, app, request_id)
    with_key = certificates.may_read_keys(audit.actor, submitted.application_id)
    view = await certificates.request_view(session, context, submitted, with_key=with_key)
    await certificates.audit_key_delivery(session, audit, view)
    return view


@router.get("/applications/{app}/certificate-requests", name="certificate_request.list")
async def list_certificate_requests(
    app: str,
    session: SessionDep,
    actor: ActorDep,
    context: ContextDep,
    status: RequestStatus | None = None,
    profile: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Page[CertificateRequestPublic]:
    """Newest first; the certificates' private keys are not included in lists."""
    application, rows, next_cursor = await requests.search(
        session,
        actor,
        app,
        requests.RequestFilter(status, profile, created_after, created_before, limit, cursor),
    )
    items = [
        await certificates.request_view(
            session,
            context,
            requests.Submitted(
                requests.RequestRecord.of(r), application.id, application.slug, p.slug, True
            ),
            with_key=False,
        )
        for r, p in rows
    ]
    return Page[CertificateRequestPublic](items=items, next_cursor=next_cursor)


@router.get("/applications/{app}/certificates/{certificate_id}", name="certificate.get")
async def get_certificate(
    app: str, certificate_id: UUID, session: SessionDep, actor: ActorDep
) -> CertificatePublic:
    certificate, application, profile = await certificates.get(session, actor, app, certificate_id)
    return certificates.certificate_view(certificate, application, profile)


@router.get(
    "/applications/{app}/certificates/{certificate_id}/pem",
    name="certificate.pem",
    response_class=Response,
    responses=_PEM_RESPONSE,
)
async def certificate_pem(
    app: str, certificate_id: UUID, session: SessionDep, actor: ActorDep
) -> Response:
    certificate, _, _ = await certificates.get(session, actor, app, certificate_id)
    return Response(certificate.certificate_pem, media_type=PEM)


@router.get(
    "/applications/{app}/certificates/{certificate_id}/chain",
    name="certificate.chain",
    response_class=Response,
    responses=_PEM_RESPONSE,
)
async def certificate_chain(
    app: str, certificate_id: UUID, session: SessionDep, actor: ActorDep, context: ContextDep
) -> Response:
    """The issuing CA's certificate first, the root last."""
    certificate, _, _ = await certificates.get(session, actor, app, certificate_id)
    return Response(await certificates.chain_pem(context.db, certificate.ca_id), media_type=PEM)


@router.get(
    "/applications/{app}/certificates/{certificate_id}/bundle",
    name="certificate.bundle",
    response_class=Response,
    responses=_PEM_RESPONSE,
)
async def certificate_bundle(
    app: str, certificate_id: UUID, session: SessionDep, actor: ActorDep, context: ContextDep
) -> Response:
    """The certificate followed by its chain (what a TLS server sends)."""
    certificate, _, _ = await certificates.get(session, actor, app, certificate_id)
    chain = await certificates.chain_pem(context.db, certificate.ca_id)
    return Response(certificate.certificate_pem + chain, media_type=PEM)


@router.get(
    "/applications/{app}/certificates/{certificate_id}/private-key",
    name="certificate.private_key",
    response_class=Response,
    responses=_PEM_RESPONSE,
)
async def certificate_private_key(
    app: str, certificate_id: UUID, session: SessionDep, audit: AuditDep, context: ContextDep
) -> Response:
    """The managed private key (PKCS#8 PEM); operators and admins only; every read is audited."""
    pem = await certificates.read_private_key(session, context, audit, app, certificate_id)
    return Response(pem, media_type=PEM, headers={"Cache-Control": "no-store"})


@router.post(
    "/applications/{app}/certificates/{certificate_id}/early-renewal",
    name="certificate.early_renewal",
)
async def request_early_renewal(
    app: str, certificate_id: UUID, session: SessionDep, audit: AuditDep
) -> CertificatePublic:
    """Ask for this certificate to be renewed early (application-admin or operator): its ACME
    client's renewal window (ARI) opens now, and an auto-renewed certificate is renewed at the
    renewer's next scan. Only active certificates: 409 when revoked or renewed, 422 expired."""
    certificate, application, profile = await certificates.request_early_renewal(
        session, audit, app, certificate_id, datetime.now(UTC)
    )
    return certificates.certificate_view(certificate, application, profile)
