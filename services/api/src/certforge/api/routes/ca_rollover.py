"""CA rollover (renew, rekey, take-over), cross-signing, and the chains and trust bundles
relying parties download. See `domain.ca_rollover` and docs/operations.md."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from certforge.api.deps import AuditDep, ContextDep, ProductAdminDep, SessionDep
from certforge.api.domain import ca_rollover
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.cas import (
    CAChainPublic,
    CACrossCertificatePublic,
    CACrossSign,
    CAPublic,
    CARekey,
    CARenew,
    CATakeOver,
)

router = APIRouter(prefix=API_PREFIX, tags=["certificate authorities"])

PEM = "application/x-pem-file"
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


@router.post("/cas/{ca_id}/renew", status_code=201, name="ca.renew")
async def renew_ca(
    ca_id: UUID,
    body: CARenew,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    _: ProductAdminDep,
) -> CAPublic:
    """A new CA certificate with the same subject and key, as a new CA that succeeds this one.

    The two overlap: this CA keeps its CRLs and OCSP; its profiles move to the new CA at
    `takes_over_at` or when `POST /cas/{new id}/take-over` says so."""
    return await ca_rollover.rollover(session, audit, context, ca_id, body)


@router.post("/cas/{ca_id}/rekey", status_code=201, name="ca.rekey")
async def rekey_ca(
    ca_id: UUID,
    body: CARekey,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    _: ProductAdminDep,
) -> CAPublic:
    """As renew, with a new key: certificates issued before verify only under this CA's
    certificate, which stays served (with its CRLs and OCSP) until they expire."""
    return await ca_rollover.rollover(session, audit, context, ca_id, body)


@router.post("/cas/{ca_id}/take-over", name="ca.take_over")
async def take_over(
    ca_id: UUID, body: CATakeOver, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> CAPublic:
    """Move the profiles of the CA this one succeeds to this one, now or at `at`."""
    return await ca_rollover.schedule_take_over(session, audit, ca_id, body.at)


@router.post("/cas/{ca_id}/cross-sign", status_code=201, name="ca.cross_sign")
async def cross_sign_ca(
    ca_id: UUID,
    body: CACrossSign,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    _: ProductAdminDep,
) -> CACrossCertificatePublic:
    """Have a second CA of ours sign this CA's subject and key (cross-certificate): clients
    that trust only the second CA's root can then validate what this CA issues."""
    return await ca_rollover.cross_sign(session, audit, context, ca_id, body)


@router.get("/cas/{ca_id}/chains", name="ca.chains")
async def ca_chains(ca_id: UUID, session: SessionDep) -> list[CAChainPublic]:
    """Every chain of this CA: through its issuer, then through each cross-signer. Public."""
    return await ca_rollover.chains(session, ca_id)


@router.get(
    "/cas/{ca_id}/chains/{signer_ca_id}",
    name="ca.cross_chain",
    response_class=Response,
    responses={200: {"content": {PEM: {}}, "description": "PEM chain through this signer"}},
)
async def ca_cross_chain(ca_id: UUID, signer_ca_id: UUID, session: SessionDep) -> Response:
    """This CA's certificate signed by `signer_ca_id`, then the signer's chain. Public."""
    pem = await ca_rollover.cross_chain(session, ca_id, signer_ca_id)
    return Response(pem, media_type=PEM, headers=_PUBLIC_CACHE)


@router.get(
    "/cas/{ca_id}/bundle",
    name="ca.bundle",
    response_class=Response,
    responses={200: {"content": {PEM: {}}, "description": "PEM root certificates"}},
)
async def ca_bundle(ca_id: UUID, session: SessionDep) -> Response:
    """The roots a relying party should trust for this CA's certificates: its own, and during
    a rollover or cross-signing the old and new ones too. Public."""
    return Response(await ca_rollover.bundle(session, ca_id), media_type=PEM, headers=_PUBLIC_CACHE)
