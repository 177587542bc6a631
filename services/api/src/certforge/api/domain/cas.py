"""Certificate authorities, as the api sees them: it validates and asks the issuer (the only
holder of CA keys) to create or import; it reads CA rows and flips their status."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.domain.common import commit, get_or_404, now
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.issuer_client import IssuerClient
from certforge.api.schemas.cas import CACreate, CAImport, CAPublic
from certforge.api.schemas.common import Page
from certforge.common.ca_rules import ParentFacts, plan_ca
from certforge.common.contracts.rpc import CreateCA, ImportCA
from certforge.common.db.tables import Certificate, CertificateAuthority
from certforge.common.domain import CAStatus, CAType, CertificateStatus, KeyAlgorithm, SignatureHash
from certforge.common.errors import Conflict
from certforge.common.name_constraints import NameConstraints


def public(ca: CertificateAuthority) -> CAPublic:
    return CAPublic(
        id=ca.id,
        name=ca.name,
        type=CAType(ca.type),
        status=CAStatus(ca.status),
        parent_ca_id=ca.parent_id,
        subject=ca.subject_dn,
        key_algorithm=KeyAlgorithm(ca.key_algorithm),
        signature_algorithm=SignatureHash(ca.signature_hash) if ca.signature_hash else None,
        max_path_length=ca.max_path_length,
        serial_number=ca.serial_number,
        not_before=ca.not_before,
        not_after=ca.not_after,
        certificate=ca.certificate_pem,
        chain=ca.chain_pem,
        name_constraints=(
            NameConstraints.model_validate(ca.name_constraints) if ca.name_constraints else None
        ),
        early_renewal_requested_at=ca.early_renewal_requested_at,
        predecessor_ca_id=ca.predecessor_id,
        takes_over_at=ca.takes_over_at,
        took_over_at=ca.took_over_at,
        created_at=ca.created_at,
    )


async def _refuse_duplicate_name(session: AsyncSession, name: str) -> None:
    if (
        await session.exec(select(CertificateAuthority).where(CertificateAuthority.name == name))
    ).first():
        raise Conflict.on_field("name", f"a CA named {name!r} exists")


async def create(
    session: AsyncSession, audit: AuditScope, issuer: IssuerClient, body: CACreate
) -> CAPublic:
    await _refuse_duplicate_name(session, body.name)
    parent = None
    if body.parent_ca_id is not None:
        parent = await get_or_404(
            session, CertificateAuthority, body.parent_ca_id, "CA", "parent_ca_id"
        )
    plan_ca(
        parent=ParentFacts.of(parent) if parent else None,
        validity=body.validity,
        max_path_length=body.max_path_length,
        not_before=body.not_before,
        signature_hash=body.signature_algorithm,
        now=now(),
        name_constraints=body.name_constraints,
    )
    await session.rollback()  # release the read snapshot while the issuer works
    reply = await issuer.create_ca(
        CreateCA(
            ca_id=uuid4(),
            name=body.name,
            type=CAType(body.type),
            parent_ca_id=body.parent_ca_id,
            subject=body.subject,
            key_algorithm=body.key_algorithm,
            signature_hash=body.signature_algorithm,
            validity=body.validity,
            max_path_length=body.max_path_length,
            not_before=body.not_before,
            name_constraints=body.name_constraints,
        )
    )
    return await _created(session, audit, reply.ca_id)


async def import_external(
    session: AsyncSession, audit: AuditScope, issuer: IssuerClient, body: CAImport
) -> CAPublic:
    await _refuse_duplicate_name(session, body.name)
    await session.rollback()
    reply = await issuer.import_ca(
        ImportCA(
            ca_id=uuid4(),
            name=body.name,
            certificate_pem=body.certificate,
            chain_pem=body.chain,
            private_key_pem=body.private_key,
        )
    )
    return await _created(session, audit, reply.ca_id)


async def _created(session: AsyncSession, audit: AuditScope, ca_id: UUID) -> CAPublic:
    ca = await get_or_404(session, CertificateAuthority, ca_id, "CA")
    audit.record(
        session,
        resource_type="ca",
        resource_id=ca.id,
        details={
            "name": ca.name,
            "type": ca.type,
            "subject": ca.subject_dn,
            **({"name_constraints": ca.name_constraints} if ca.name_constraints else {}),
        },
        status_code=201,
    )
    await commit(session)
    return public(ca)


async def list_all(session: AsyncSession, page: PageRequest) -> Page[CAPublic]:
    table = CertificateAuthority
    rows, cursor = await keyset_page(
        session,
        select(table),
        col(table.created_at),
        col(table.id),
        page,
        lambda ca: (ca.created_at, ca.id),
    )
    return Page(items=[public(ca) for ca in rows], next_cursor=cursor)


async def get(session: AsyncSession, ca_id: UUID) -> CertificateAuthority:
    return await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")


async def set_status(
    session: AsyncSession, audit: AuditScope, ca_id: UUID, status: CAStatus
) -> CAPublic:
    ca = await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    if ca.status != status:
        ca.status = status
        ca.updated_at = now()
        session.add(ca)
    audit.record(session, resource_type="ca", resource_id=ca.id, details={"status": status.value})
    await commit(session)
    return public(ca)


async def request_early_renewal(
    session: AsyncSession, audit: AuditScope, ca_id: UUID, when: datetime
) -> CAPublic:
    """Ask for every certificate this CA issued before `when` to be renewed early (after a key
    compromise or a mis-issuance, say): ARI shows their clients a window that opened then, and
    the active auto-renewed ones become due for the renewer in the same transaction. Asking
    again moves the moment forward, so it also covers what was issued in between."""
    ca = await get_or_404(session, CertificateAuthority, ca_id, "CA", "ca_id")
    ca.early_renewal_requested_at = when
    ca.updated_at = when
    session.add(ca)
    due = (
        update(Certificate)
        .where(
            col(Certificate.ca_id) == ca.id,
            col(Certificate.status) == CertificateStatus.ACTIVE.value,
            col(Certificate.auto_renew),
            col(Certificate.created_at) < when,
            col(Certificate.renew_at) > when,
        )
        .values(renew_at=when, updated_at=when)
    )
    # An UPDATE's result is a cursor result, which counts the rows it changed.
    rescheduled = (await session.exec(due)).rowcount
    audit.record(
        session,
        resource_type="ca",
        resource_id=ca.id,
        details={"early_renewal_requested_at": when.isoformat(), "rescheduled": rescheduled},
    )
    await commit(session)
    return public(ca)
