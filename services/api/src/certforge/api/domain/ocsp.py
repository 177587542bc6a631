"""Answering OCSP requests from pre-signed answers, kept in memory and in `ocsp_responses`.

A plain request (SHA-1 CertID, no nonce) about a certificate whose answer this replica remembers
costs no database query and no signature. Otherwise the answer is loaded from `ocsp_responses`,
or, when there is none or it is past half its validity, signed from the certificate's status and
stored (Let's Encrypt's model: signed ahead, not per request). A revocation re-signs the answer
in its own transaction (`sign_revoked`) and every replica forgets its copy before the revoking
call returns (`replicas.Replicas`).

Unknown CA, no valid responder and a CA id that is not even a UUID are all `unauthorized`
(RFC 6960 §2.3: "not authorized to answer for this CA"); a request naming another CA (hashes
differ) or a serial we never issued from this CA is `unknown`, signed per request and not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert
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
    is_plain,
    parse_request,
    unsuccessful,
)
from certforge.api.replicas import Replicas
from certforge.api.revocation_memory import AnswerMemory, Prepared, etag_of
from certforge.common.crypto.certificates import load_certificate_pem
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import load_stored_private_key
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import (
    Certificate,
    CertificateAuthority,
    OcspResponder,
    OcspResponse,
)
from certforge.common.domain import CertificateStatus, RevocationReason


@dataclass(frozen=True)
class Answer:
    der: bytes
    prepared: Prepared | None = None
    """Set on successful answers: when it was signed, until when a cache may keep it."""


MALFORMED = Answer(unsuccessful(Status.MALFORMED_REQUEST))
UNAUTHORIZED = Answer(unsuccessful(Status.UNAUTHORIZED))
INTERNAL_ERROR = Answer(unsuccessful(Status.INTERNAL_ERROR))


@dataclass
class OcspDeps:
    """What answering needs: the api context's parts, named so tests can build two replicas."""

    sessions: SessionFactory
    cache: OcspCache
    memory: AnswerMemory
    replicas: Replicas
    leaf_keys: KeyRing
    validity: timedelta


def from_memory(deps: OcspDeps, ca_ref: str, request_der: bytes, now: datetime) -> Answer | None:
    """The answer without any I/O, when this replica remembers it; `None` means ask `answer`."""
    key = deps.cache.requests.get((ca_ref, request_der))
    if key is None:
        cert_id = parse_request(request_der)
        if cert_id is None:
            return MALFORMED
        ca_id = as_uuid(ca_ref)
        issuer = deps.cache.issuers.get(ca_id) if ca_id is not None else None
        if ca_id is None or issuer is None or not is_plain(cert_id):
            return None
        if not issuer.named_by(cert_id) or cert_id.serial_number <= 0:
            return None
        key = (ca_id, cert_id.serial_number)
        deps.cache.remember_request(ca_ref, request_der, key)
    if not deps.replicas.may_serve_from_memory():
        return None
    prepared = deps.memory.serve(key, now)
    return Answer(prepared.der, prepared) if prepared is not None else None


async def answer(deps: OcspDeps, ca_ref: str, request_der: bytes | None, now: datetime) -> Answer:
    cert_id = parse_request(request_der) if request_der is not None else None
    if cert_id is None:
        return MALFORMED
    ca_id = as_uuid(ca_ref)
    if ca_id is None:
        return UNAUTHORIZED
    async with deps.sessions() as session:
        responder = await current_responder(session, deps.cache, deps.leaf_keys, ca_id, now)
        if responder is None:
            return UNAUTHORIZED
        issuer = await issuer_of(session, deps.cache, ca_id)
        if not issuer.named_by(cert_id) or cert_id.serial_number <= 0:
            return _signed(cert_id, None, responder, now, deps.validity)
        key = (ca_id, cert_id.serial_number)
        prepared = deps.memory.get(key, now) if deps.replicas.may_serve_from_memory() else None
        if prepared is None:
            epoch = deps.memory.epoch
            prepared = await _stored_or_signed(
                session, issuer, responder, ca_id, cert_id, now, deps
            )
            if prepared is None:
                return _signed(cert_id, None, responder, now, deps.validity)
            if deps.replicas.may_serve_from_memory():
                deps.memory.remember(key, prepared, epoch)
    if is_plain(cert_id):
        return Answer(prepared.der, prepared)
    return _signed(cert_id, prepared.status, responder, now, deps.validity)


def _signed(
    cert_id: CertId, status: CertStatus, responder: Responder, now: datetime, validity: timedelta
) -> Answer:
    """Signed for this request only (nonce, other hash, unknown)."""
    der = build_response(cert_id, status, responder, now, validity)
    this_update = now.replace(microsecond=0)
    return Answer(der, Prepared(der, status, this_update, this_update + validity, etag_of(der)))


async def _stored_or_signed(
    session: AsyncSession,
    issuer: Issuer,
    responder: Responder,
    ca_id: UUID,
    cert_id: CertId,
    now: datetime,
    deps: OcspDeps,
) -> Prepared | None:
    """The stored answer while fresh; else signed now from the certificate's status and stored.
    `None`: no such certificate (unknown)."""
    serial = _serial_text(cert_id.serial_number)
    row = await session.get(OcspResponse, (ca_id, serial))
    if row is not None:
        stored = _prepared(row)
        if stored.fresh(now):
            return stored
    status = await status_of(session, ca_id, cert_id)
    if status is None:
        return None
    plain = issuer.cert_id(cert_id.serial_number)
    der = build_response(plain, status, responder, now, deps.validity)
    kept = await _store(session, ca_id, serial, status, der, now, deps.validity)
    await session.commit()
    return kept


async def _store(
    session: AsyncSession,
    ca_id: UUID,
    serial: str,
    status: CertStatus,
    der: bytes,
    now: datetime,
    validity: timedelta,
) -> Prepared:
    """Upsert the answer; a `good` answer never replaces a `revoked` one (a revocation that
    committed while this one was being signed wins), in which case the stored one is returned."""
    this_update = now.replace(microsecond=0)
    values = {
        "ca_id": ca_id,
        "serial_number": serial,
        "status": "revoked" if isinstance(status, Revocation) else "good",
        "revoked_at": status.revoked_at if isinstance(status, Revocation) else None,
        "revocation_reason": status.reason.value if isinstance(status, Revocation) else None,
        "this_update": this_update,
        "next_update": this_update + validity,
        "der": der,
    }
    table = OcspResponse.__table__  # type: ignore[attr-defined]
    insert_row = insert(table).values(**values)
    upsert = insert_row.on_conflict_do_update(
        index_elements=[table.c.ca_id, table.c.serial_number],
        set_={k: insert_row.excluded[k] for k in values if k not in ("ca_id", "serial_number")},
        where=or_(table.c.status != "revoked", insert_row.excluded.status == "revoked"),
    ).returning(table.c.ca_id)
    if (await session.exec(upsert)).first() is None:
        row = await session.get(OcspResponse, (ca_id, serial), populate_existing=True)
        assert row is not None, "the upsert was refused by an existing revoked answer"
        return _prepared(row)
    return Prepared(der, status, this_update, this_update + validity, etag_of(der))


def _prepared(row: OcspResponse) -> Prepared:
    status: CertStatus = GOOD
    if row.status == "revoked":
        assert row.revoked_at is not None
        status = Revocation(
            row.revoked_at, RevocationReason(row.revocation_reason or RevocationReason.UNSPECIFIED)
        )
    return Prepared(row.der, status, row.this_update, row.next_update, etag_of(row.der))


def _serial_text(serial_number: int) -> str:
    # Stored as `format(n, "x")` (lower-case, no leading zeros), so equal text = equal integer,
    # and lookups use the (ca_id, serial_number) unique indexes.
    return format(serial_number, "x")


async def sign_revoked(
    session: AsyncSession,
    deps: OcspDeps,
    certificate: Certificate,
    now: datetime,
) -> None:
    """In the revoking transaction: the certificate's stored answer becomes `revoked`, signed
    now. Without a valid responder (it cannot happen after CA creation) the stored answer is
    dropped instead, so nothing stale outlives the revocation."""
    ca_id = certificate.ca_id
    responder = await current_responder(session, deps.cache, deps.leaf_keys, ca_id, now)
    if responder is None:
        row = await session.get(OcspResponse, (ca_id, certificate.serial_number))
        if row is not None:
            await session.delete(row)
        return
    issuer = await issuer_of(session, deps.cache, ca_id)
    assert certificate.revoked_at is not None
    status = Revocation(
        certificate.revoked_at,
        RevocationReason(certificate.revocation_reason or RevocationReason.UNSPECIFIED),
    )
    serial = int(certificate.serial_number, 16)
    der = build_response(issuer.cert_id(serial), status, responder, now, deps.validity)
    await _store(session, ca_id, certificate.serial_number, status, der, now, deps.validity)


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
    serial = _serial_text(cert_id.serial_number)
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
