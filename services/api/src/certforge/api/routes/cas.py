from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter, Response

from certforge.api.deps import AuditDep, ContextDep, ProductAdminDep, SessionDep
from certforge.api.domain import cas
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.cas import CACreate, CAImport, CAPublic
from certforge.api.schemas.common import Page
from certforge.api.versions import tagged
from certforge.common.contracts.routes import CA_CERTIFICATE_DER
from certforge.common.crypto.certificates import certificate_to_der, load_certificate_pem
from certforge.common.domain import CAStatus

router = APIRouter(prefix=API_PREFIX, tags=["certificate authorities"])

PEM = "application/x-pem-file"
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


@router.post("/cas", status_code=201, name="ca.create")
async def create_ca(
    body: CACreate, session: SessionDep, audit: AuditDep, context: ContextDep, _: ProductAdminDep
) -> CAPublic:
    """Create a root (self-signed) or an intermediate signed by one of our CAs.

    The issuer service generates the key and keeps it, encrypted; it never leaves the issuer.
    """
    return await cas.create(session, audit, context.issuer, body)


@router.post("/cas/import", status_code=201, name="ca.import")
async def import_ca(
    body: CAImport, session: SessionDep, audit: AuditDep, context: ContextDep, _: ProductAdminDep
) -> CAPublic:
    """Import an external CA certificate and its private key as a CA of ours."""
    return await cas.import_external(session, audit, context.issuer, body)


@router.get("/cas", name="ca.list")
async def list_cas(session: SessionDep, _: ProductAdminDep, page: PageDep) -> Page[CAPublic]:
    """Newest first (`limit`, `cursor`: the API's one paging convention)."""
    return await cas.list_all(session, page)


@router.get("/cas/{ca_id}", name="ca.get")
async def get_ca(
    ca_id: UUID, session: SessionDep, _: ProductAdminDep, response: Response
) -> CAPublic:
    """With its `ETag` (a CA changes only through its actions: disable, enable, …)."""
    return tagged(response, cas.public(await cas.get(session, ca_id)))


@router.get(
    "/cas/{ca_id}/certificate",
    name="ca.certificate",
    response_class=Response,
    responses={200: {"content": {PEM: {}}, "description": "PEM certificate"}},
)
async def ca_certificate(ca_id: UUID, session: SessionDep) -> Response:
    """The CA certificate (PEM). Public: relying parties need it to build trust."""
    ca = await cas.get(session, ca_id)
    return Response(ca.certificate_pem, media_type=PEM, headers=_PUBLIC_CACHE)


@router.get(
    "/cas/{ca_id}/chain",
    name="ca.chain",
    response_class=Response,
    responses={200: {"content": {PEM: {}}, "description": "PEM chain, this CA first"}},
)
async def ca_chain(ca_id: UUID, session: SessionDep) -> Response:
    """This CA's certificate followed by its issuers up to the root. Public."""
    ca = await cas.get(session, ca_id)
    return Response(ca.certificate_pem + ca.chain_pem, media_type=PEM, headers=_PUBLIC_CACHE)


@router.post("/cas/{ca_id}/disable", name="ca.disable")
async def disable_ca(
    ca_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> CAPublic:
    """Stop issuing from this CA (existing certificates stay valid)."""
    return await cas.set_status(session, audit, ca_id, CAStatus.DISABLED)


@router.post("/cas/{ca_id}/enable", name="ca.enable")
async def enable_ca(
    ca_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> CAPublic:
    return await cas.set_status(session, audit, ca_id, CAStatus.ACTIVE)


@router.get(
    CA_CERTIFICATE_DER,
    name="ca.certificate_der",
    response_class=Response,
    responses={200: {"content": {"application/pkix-cert": {}}, "description": "DER certificate"}},
)
async def ca_certificate_der(ca_id: UUID, session: SessionDep) -> Response:
    """The CA certificate (DER). Public: the caIssuers URL of issued certificates points here."""
    ca = await cas.get(session, ca_id)
    der = certificate_to_der(load_certificate_pem(ca.certificate_pem))
    return Response(der, media_type="application/pkix-cert", headers=_PUBLIC_CACHE)


@router.post("/cas/{ca_id}/early-renewal", name="ca.early_renewal")
async def request_early_renewal(
    ca_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> CAPublic:
    """Ask for every certificate this CA issued until now to be renewed early (after a key
    compromise or a mis-issuance): ACME clients see their renewal window (ARI) open now, and
    active auto-renewed certificates are renewed at the renewer's next scan."""
    return await cas.request_early_renewal(session, audit, ca_id, datetime.now(UTC))
