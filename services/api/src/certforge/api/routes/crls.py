"""CRLs, served from storage (the issuer signs them; nothing is built per request). Public."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Response
from sqlmodel import col, select

from certforge.api.deps import SessionDep
from certforge.api.routes import API_PREFIX
from certforge.common.contracts.routes import CA_CRL
from certforge.common.db.tables import CertificateAuthority, Crl
from certforge.common.errors import NotFound, Unavailable

router = APIRouter(prefix=API_PREFIX, tags=["certificate authorities"])

DER = "application/pkix-crl"
PEM = "application/x-pem-file"


async def _latest(session: SessionDep, ca_id: UUID) -> Crl:
    if await session.get(CertificateAuthority, ca_id) is None:
        raise NotFound.on_field("ca_id", f"no CA with id {ca_id}")
    crl = (
        await session.exec(
            select(Crl).where(Crl.ca_id == ca_id).order_by(col(Crl.number).desc()).limit(1)
        )
    ).first()
    if crl is None:
        raise Unavailable("the first CRL of this CA is being signed; retry in a few seconds")
    return crl


def _headers(crl: Crl) -> dict[str, str]:
    """Cacheable until shortly before nextUpdate, so caches never serve a stale CRL long."""
    seconds = int((crl.next_update - datetime.now(UTC)).total_seconds())
    return {
        "Cache-Control": f"public, max-age={max(0, min(seconds // 2, 3600))}",
        "Last-Modified": format_datetime(crl.this_update, usegmt=True),
        "Expires": format_datetime(crl.next_update, usegmt=True),
        "ETag": f'"{crl.ca_id}-{crl.number}"',
    }


@router.get(
    CA_CRL,
    name="ca.crl",
    response_class=Response,
    responses={200: {"content": {DER: {}}, "description": "the current CRL, DER"}},
)
async def crl_der(ca_id: UUID, session: SessionDep) -> Response:
    """The CA's current CRL (DER); the CRL distribution point of issued certificates."""
    crl = await _latest(session, ca_id)
    return Response(crl.der, media_type=DER, headers=_headers(crl))


@router.get(
    "/cas/{ca_id}/crl.pem",
    name="ca.crl.pem",
    response_class=Response,
    responses={200: {"content": {PEM: {}}, "description": "the current CRL, PEM"}},
)
async def crl_pem(ca_id: UUID, session: SessionDep) -> Response:
    crl = await _latest(session, ca_id)
    pem = x509.load_der_x509_crl(crl.der).public_bytes(Encoding.PEM)
    return Response(pem, media_type=PEM, headers=_headers(crl))
