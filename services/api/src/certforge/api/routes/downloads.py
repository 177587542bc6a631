"""Binary downloads of one certificate: DER, and PKCS#12 with its managed key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from certforge.api.deps import ActorDep, AuditDep, ContextDep, SessionDep
from certforge.api.domain import downloads
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.inventory import Pkcs12Create

router = APIRouter(prefix=API_PREFIX, tags=["certificates"])

PKIX_CERT = "application/pkix-cert"
PKCS12 = "application/x-pkcs12"
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media_type: _BINARY}, "description": description}}


@router.get(
    "/applications/{app}/certificates/{certificate_id}/der",
    name="certificate.der",
    response_class=Response,
    responses=_binary(PKIX_CERT, "the certificate, DER"),
)
async def certificate_der(
    app: str, certificate_id: UUID, session: SessionDep, actor: ActorDep
) -> Response:
    data = await downloads.der(session, actor, app, certificate_id)
    return Response(data, media_type=PKIX_CERT)


@router.post(
    "/applications/{app}/certificates/{certificate_id}/pkcs12",
    name="certificate.pkcs12",
    response_class=Response,
    responses=_binary(PKCS12, "password-protected PKCS#12 (AES-256-CBC, PBKDF2)"),
)
async def certificate_pkcs12(
    app: str,
    certificate_id: UUID,
    body: Pkcs12Create,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
) -> Response:
    """The certificate with its managed private key (and chain) as PKCS#12, for servers that
    import `.p12`/`.pfx` files. Operators and admins only; every download is audited."""
    filename, data = await downloads.pkcs12_bundle(
        session, context, audit, app, certificate_id, body
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }
    return Response(data, media_type=PKCS12, headers=headers)
