"""CRLs and OCSP responder certificates, kept current by one loop in every issuer replica.

A CRL is rebuilt when a revocation marked its CA dirty or when half its validity has passed;
never per revocation: revocations that arrive during a rebuild are served by the next one
(coalescing). CA rows are claimed `FOR UPDATE SKIP LOCKED`, so replicas share the CAs and never
sign the same CRL number twice. Each CA also gets a delegated OCSP responder certificate,
renewed when two thirds of its validity have passed; its key is encrypted under the leaf key
ring, for the api that answers OCSP. A new CA gets both in its creation transaction
(`upkeep_rows`), so it answers OCSP and serves a CRL from the moment its creation call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, Field
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.crypto.certificates import certificate_to_pem
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import PrivateKey, generate_private_key, private_key_to_der
from certforge.common.crypto.revocation import Revoked, build_crl, build_ocsp_responder
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import Certificate, CertificateAuthority, Crl, OcspResponder
from certforge.common.domain import CertificateStatus, KeyAlgorithm, RevocationReason
from certforge.common.metrics import CRL_AGE, CRL_BUILDS
from certforge.issuer.ca_cache import Signer, SignerCache

log = logging.getLogger(__name__)


class RevocationSettings(BaseModel):
    """CRL and OCSP responder upkeep (`CERTFORGE_REVOCATION__…`)."""

    crl_validity_hours: float = Field(
        default=24, gt=0, description="nextUpdate - thisUpdate of every CRL"
    )
    poll_seconds: float = Field(
        default=10, gt=0, description="how often CAs are checked when no revocation pokes"
    )
    ocsp_responder_validity_days: int = Field(
        default=30, ge=1, description="validity of the delegated OCSP signing certificates"
    )


class RevocationPublisher:
    def __init__(
        self,
        sessions: SessionFactory,
        signers: SignerCache,
        leaf_keys: KeyRing,
        settings: RevocationSettings,
    ) -> None:
        self._sessions = sessions
        self._signers = signers
        self._leaf_keys = leaf_keys
        self._settings = settings
        self._poked = asyncio.Event()

    def poke(self) -> None:
        """A revocation happened: refresh soon (many pokes, one refresh)."""
        self._poked.set()

    async def mark_dirty(self, certificate_ids: list[UUID]) -> None:
        """The CAs of these revoked certificates need a new CRL."""
        async with self._sessions() as session, session.begin():
            cas = select(Certificate.ca_id).where(col(Certificate.id).in_(certificate_ids))
            await session.exec(
                update(CertificateAuthority)
                .where(col(CertificateAuthority.id).in_(cas.scalar_subquery()))
                .values(crl_dirty=True)
            )
        self.poke()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.refresh()
            except Exception:
                log.exception("CRL/OCSP refresh failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait(stopping), timeout=self._settings.poll_seconds)
            self._poked.clear()

    async def _wait(self, stopping: asyncio.Event) -> None:
        poked = asyncio.create_task(self._poked.wait())
        stop = asyncio.create_task(stopping.wait())
        _, pending = await asyncio.wait({poked, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def refresh(self, now: datetime | None = None) -> int:
        """Rebuild due CRLs and responders of the CAs no other replica holds; return CRLs made."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        validity = timedelta(hours=self._settings.crl_validity_hours)
        built = 0
        async with self._sessions() as session, session.begin():
            cas = (
                await session.exec(
                    select(CertificateAuthority)
                    .order_by(col(CertificateAuthority.id))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not cas:
                return 0
            latest = await _latest_crls(session, [ca.id for ca in cas])
            responders = await _latest_responders(session, [ca.id for ca in cas])
            for ca in cas:
                last = latest.get(ca.id)
                if ca.crl_dirty or last is None or last + validity / 2 <= now:
                    await self._rebuild_crl(session, ca, now, validity)
                    built += 1
                    last = now
                CRL_AGE.labels(ca.name).set((now - last).total_seconds())
                expiry = responders.get(ca.id)
                lifetime = timedelta(days=self._settings.ocsp_responder_validity_days)
                if ca.not_after > now and (expiry is None or expiry - lifetime / 3 <= now):
                    self._issue_responder(session, ca, now, lifetime)
        return built

    async def _rebuild_crl(
        self, session: AsyncSession, ca: CertificateAuthority, now: datetime, validity: timedelta
    ) -> None:
        rows = await session.exec(
            select(Certificate.serial_number, Certificate.revoked_at, Certificate.revocation_reason)
            .where(
                Certificate.ca_id == ca.id,
                Certificate.status == CertificateStatus.REVOKED,
                col(Certificate.not_after) > now,
            )
            .order_by(col(Certificate.revoked_at))
        )
        entries = [
            Revoked(int(serial, 16), revoked_at or now, RevocationReason(reason or "unspecified"))
            for serial, revoked_at, reason in rows
        ]
        signer = self._signers.signer(ca)
        crl = await asyncio.to_thread(crl_row, ca, signer, entries, now, validity)
        session.add(crl)
        ca.crl_number = crl.number
        ca.crl_dirty = False
        session.add(ca)
        CRL_BUILDS.inc()
        log.info("CRL %d of CA %s: %d entries", crl.number, ca.name, len(entries))

    def _issue_responder(
        self, session: AsyncSession, ca: CertificateAuthority, now: datetime, lifetime: timedelta
    ) -> None:
        session.add(responder_row(ca, self._signers.signer(ca), self._leaf_keys, now, lifetime))


def upkeep_rows(
    ca: CertificateAuthority,
    ca_key: PrivateKey,
    leaf_keys: KeyRing,
    settings: RevocationSettings,
    now: datetime,
) -> tuple[Crl, OcspResponder]:
    """A new CA's first (empty) CRL and its OCSP responder, stored with the CA itself: the
    upkeep loop would make them only at its next pass, seconds later (issue 20, defect 6)."""
    now = now.replace(microsecond=0)
    signer = Signer(ca, ca_key)
    crl = crl_row(ca, signer, [], now, timedelta(hours=settings.crl_validity_hours))
    ca.crl_number = crl.number
    ca.crl_dirty = False
    lifetime = timedelta(days=settings.ocsp_responder_validity_days)
    return crl, responder_row(ca, signer, leaf_keys, now, lifetime)


def crl_row(
    ca: CertificateAuthority,
    signer: Signer,
    entries: list[Revoked],
    now: datetime,
    validity: timedelta,
) -> Crl:
    """The CA's next CRL (number `ca.crl_number + 1`), signed; the caller stores it and moves
    `ca.crl_number` on in the same transaction."""
    number = ca.crl_number + 1
    next_update = min(now + validity, max(ca.not_after, now + timedelta(minutes=1)))
    crl = build_crl(signer.certificate, signer.key, number, entries, now, next_update)
    return Crl(
        ca_id=ca.id,
        number=number,
        this_update=now,
        next_update=next_update,
        entries=len(entries),
        der=crl.public_bytes(Encoding.DER),
    )


def responder_row(
    ca: CertificateAuthority,
    signer: Signer,
    leaf_keys: KeyRing,
    now: datetime,
    lifetime: timedelta,
) -> OcspResponder:
    """A new delegated responder of `ca`: EC P-256 key encrypted under the leaf key ring."""
    key = generate_private_key(KeyAlgorithm.EC_P256)
    not_after = min(now + lifetime, ca.not_after)
    cert = build_ocsp_responder(signer.certificate, signer.key, key.public_key(), now, not_after)
    responder_id = uuid4()
    return OcspResponder(
        id=responder_id,
        ca_id=ca.id,
        certificate_pem=certificate_to_pem(cert),
        encrypted_private_key=leaf_keys.encrypt(private_key_to_der(key), responder_id.bytes),
        key_kek_id=leaf_keys.active_kid,
        not_before=now,
        not_after=not_after,
    )


async def _latest_crls(session: AsyncSession, ca_ids: list[UUID]) -> dict[UUID, datetime]:
    rows = await session.exec(
        select(Crl.ca_id, func.max(Crl.this_update))
        .where(col(Crl.ca_id).in_(ca_ids))
        .group_by(col(Crl.ca_id))
    )
    return {ca_id: this_update for ca_id, this_update in rows}  # noqa: C416 - typed rows


async def _latest_responders(session: AsyncSession, ca_ids: list[UUID]) -> dict[UUID, datetime]:
    rows = await session.exec(
        select(OcspResponder.ca_id, func.max(OcspResponder.not_after))
        .where(col(OcspResponder.ca_id).in_(ca_ids))
        .group_by(col(OcspResponder.ca_id))
    )
    return {ca_id: not_after for ca_id, not_after in rows}  # noqa: C416 - typed rows
