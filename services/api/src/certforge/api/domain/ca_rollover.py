"""CA rollover, cross-signing and trust bundles, as the api sees them: it checks what it can
early, asks the issuer (the only holder of CA keys) to sign, moves profiles when the admin says,
and serves the chains and bundles relying parties need. Rules live in `common.ca_rollover`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.context import ApiContext
from certforge.api.domain.cas import _refuse_duplicate_name, public
from certforge.api.domain.common import commit, get_or_404, now
from certforge.api.domain.syncs import queue_pushes
from certforge.api.schemas.cas import (
    CAChainPublic,
    CACrossCertificatePublic,
    CACrossSign,
    CAPublic,
    CARekey,
    CARenew,
)
from certforge.common.ca_rollover import (
    BundleCA,
    BundleCross,
    check_rollover,
    check_take_over,
    take_over,
    trust_bundle,
)
from certforge.common.contracts.rpc import CrossSignCA, RolloverCA
from certforge.common.db.tables import CACrossCertificate, CertificateAuthority, SyncDestination
from certforge.common.destinations.options import SyncOptions
from certforge.common.errors import NotFound


async def rollover(
    session: AsyncSession,
    audit: AuditScope,
    context: ApiContext,
    ca_id: UUID,
    body: CARenew,
) -> CAPublic:
    """Renew (`CARenew`) or rekey (`CARekey`) CA `ca_id`: the issuer makes its successor."""
    old = await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    check_rollover(old)
    rekey = isinstance(body, CARekey)
    at = now()
    name = body.name or f"{old.name[:100]}-{'rekeyed' if rekey else 'renewed'}-{at:%Y%m%d%H%M%S}"
    await _refuse_duplicate_name(session, name)
    await session.rollback()  # release the read snapshot while the issuer works
    reply = await context.issuer.rollover_ca(
        RolloverCA(
            ca_id=uuid4(),
            predecessor_id=ca_id,
            name=name,
            rekey=rekey,
            key_algorithm=body.key_algorithm if isinstance(body, CARekey) else None,
            signature_hash=body.signature_algorithm,
            validity=body.validity,
            takes_over_at=body.takes_over_at,
        )
    )
    ca = await get_or_404(session, CertificateAuthority, reply.ca_id, "CA")
    audit.record(
        session,
        resource_type="ca",
        resource_id=ca.id,
        details={
            "name": ca.name,
            "predecessor": str(ca_id),
            "rekey": rekey,
            **({"takes_over_at": body.takes_over_at.isoformat()} if body.takes_over_at else {}),
            "trust_bundle_pushes": await push_trust_bundles(session, context),
        },
        status_code=201,
    )
    await commit(session)
    context.relay.wake()
    return public(ca)


async def schedule_take_over(
    session: AsyncSession, audit: AuditScope, ca_id: UUID, at: datetime | None
) -> CAPublic:
    """Move the predecessor's profiles to CA `ca_id` now (`at` none or past) or at `at`."""
    successor = await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    moment = now()
    when = at or moment
    check_take_over(successor, when, moment)
    moved = 0
    if when <= moment:
        moved = await take_over(session, successor, moment)
    else:
        successor.takes_over_at = when
        successor.updated_at = moment
        session.add(successor)
    audit.record(
        session,
        resource_type="ca",
        resource_id=successor.id,
        details={"takes_over_at": when.isoformat(), "profiles_moved": moved},
    )
    await commit(session)
    return public(successor)


async def cross_sign(
    session: AsyncSession,
    audit: AuditScope,
    context: ApiContext,
    ca_id: UUID,
    body: CACrossSign,
) -> CACrossCertificatePublic:
    await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    await get_or_404(session, CertificateAuthority, body.signer_ca_id, "CA", "signer_ca_id")
    await session.rollback()
    cross_id = uuid4()
    await context.issuer.cross_sign_ca(
        CrossSignCA(
            cross_id=cross_id, ca_id=ca_id, signer_ca_id=body.signer_ca_id, validity=body.validity
        )
    )
    cross = await get_or_404(session, CACrossCertificate, cross_id, "cross-certificate")
    audit.record(
        session,
        resource_type="ca",
        resource_id=ca_id,
        details={
            "cross_signed_by": str(body.signer_ca_id),
            "serial": cross.serial_number,
            "trust_bundle_pushes": await push_trust_bundles(session, context),
        },
        status_code=201,
    )
    await commit(session)
    context.relay.wake()
    return cross_public(cross)


async def push_trust_bundles(session: AsyncSession, context: ApiContext) -> int:
    """Queue a push to every sync that sends trust bundles, since a new CA changed them:
    relying parties learn the new root before anything is issued under it. Rollovers are rare
    and a push replaces objects in place, so every such sync is refreshed."""
    queued = 0
    for sync in await session.exec(select(SyncDestination).where(col(SyncDestination.enabled))):
        if SyncOptions.model_validate(sync.options).include_trust_bundle:
            queued += await queue_pushes(session, context.subjects, sync, reason="trust_bundle")
    return queued


def cross_public(cross: CACrossCertificate) -> CACrossCertificatePublic:
    return CACrossCertificatePublic(
        id=cross.id,
        ca_id=cross.ca_id,
        signer_ca_id=cross.signer_ca_id,
        serial_number=cross.serial_number,
        not_before=cross.not_before,
        not_after=cross.not_after,
        certificate=cross.certificate_pem,
        chain=cross.chain_pem,
    )


async def chains(session: AsyncSession, ca_id: UUID) -> list[CAChainPublic]:
    """Every path up from CA `ca_id`: its own chain first, then one per valid cross-certificate
    (the newest of each signer)."""
    ca = await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    found = [
        CAChainPublic(signer_ca_id=ca.parent_id, certificates=ca.certificate_pem + ca.chain_pem)
    ]
    crosses = await session.exec(
        select(CACrossCertificate)
        .where(
            col(CACrossCertificate.ca_id) == ca_id,
            col(CACrossCertificate.not_after) > now(),
        )
        .order_by(col(CACrossCertificate.created_at).desc())
    )
    signers: set[UUID] = set()
    for cross in crosses:
        if cross.signer_ca_id not in signers:
            signers.add(cross.signer_ca_id)
            found.append(
                CAChainPublic(
                    signer_ca_id=cross.signer_ca_id,
                    certificates=cross.certificate_pem + cross.chain_pem,
                )
            )
    return found


async def cross_chain(session: AsyncSession, ca_id: UUID, signer_ca_id: UUID) -> str:
    """The PEM chain of CA `ca_id` through its cross-certificate from `signer_ca_id`."""
    for chain in await chains(session, ca_id):
        if chain.signer_ca_id == signer_ca_id:
            return chain.certificates
    raise NotFound.on_field("signer_ca_id", f"no valid chain of this CA through {signer_ca_id}")


async def bundle(session: AsyncSession, ca_id: UUID) -> str:
    """The trust bundle of CA `ca_id` (PEM): see `common.ca_rollover.trust_bundle`."""
    await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    return "".join(await bundle_pems(session, ca_id))


async def bundle_pems(session: AsyncSession, ca_id: UUID) -> list[str]:
    cas = {ca.id: BundleCA.of(ca) for ca in await session.exec(select(CertificateAuthority))}
    crosses = [BundleCross.of(c) for c in await session.exec(select(CACrossCertificate))]
    return trust_bundle(ca_id, cas, crosses, now())
