"""The renewal scan: find certificates inside their renewal window and ask for successors.

Due = active, auto-renew on, managed key, not renewed and not being renewed, `renew_at` passed
(the issuer sets it `renew_before_days` before expiry and pushes it back after a failure), and
its CA active. The query walks the partial index `ix_certificates_renewal_due`, so its cost
grows with the number due, not with the number of certificates. Rows are claimed
`FOR UPDATE OF certificates SKIP LOCKED` in batches: any number of renewers run at once and
each certificate is claimed once. A claim (the certificate points at its new renewal request)
and the renew command (outbox) commit together.

The same loop marks expired certificates `expired` and announces `certificate.expiring` once per
certificate per threshold (30, 7 and 1 days by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlmodel import col, select

from certforge.common.contracts.commands import RenewCertificate
from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.contracts.events import CertificateExpired, CertificateExpiring
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
)
from certforge.common.domain import (
    CAStatus,
    CertificateStatus,
    RenewalKey,
    RequestKind,
    RequestMethod,
)
from certforge.common.durations import format_duration
from certforge.common.issuance import RequestParams
from certforge.common.metrics import CERTIFICATES_EXPIRED, RENEWALS_DUE
from certforge.common.outbox import enqueue_many
from certforge.common.request_rows import new_request_row
from certforge.renewer.settings import ScanSettings

log = logging.getLogger(__name__)

SOURCE = "/certforge/renewer"
_AUTO_RENEWAL = RequestParams(method=RequestMethod.MANAGED, key=RenewalKey.NEW)
"""What an automatic renewal asks for: a new managed key (certificates from a CSR are renewed
by their clients, and are never due here)."""


_CLAIM = sa.text(
    "UPDATE certificates SET renewing_request_id = claim.request_id "
    "FROM unnest(:ids, :requests) AS claim(id, request_id) WHERE certificates.id = claim.id"
).bindparams(
    sa.bindparam("ids", type_=sa.ARRAY(sa.Uuid())),
    sa.bindparam("requests", type_=sa.ARRAY(sa.Uuid())),
)
"""A batch's claims in one statement (the ORM's bulk update sends one UPDATE per row)."""


@dataclass
class ScanResult:
    renewals: int = 0
    expired: int = 0
    expiring: int = 0


class RenewalScanner:
    def __init__(
        self,
        sessions: SessionFactory,
        subjects: Subjects,
        settings: ScanSettings,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._subjects = subjects
        self._settings = settings
        self._after_commit = after_commit

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                result = await self.scan()
                if result.renewals or result.expired or result.expiring:
                    log.info(
                        "scan: %d renewals requested, %d expired, %d expiring notices",
                        result.renewals,
                        result.expired,
                        result.expiring,
                    )
            except Exception:
                log.exception("renewal scan failed; next scan retries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stopping.wait(), timeout=self._settings.interval.total_seconds()
                )

    async def scan(self, now: datetime | None = None) -> ScanResult:
        now = now or datetime.now(UTC)
        result = ScanResult()
        while (claimed := await self.claim_due(now)) > 0:
            result.renewals += claimed
            if claimed < self._settings.batch_size:
                break
        result.expired = await self.mark_expired(now)
        while (notified := await self.announce_expiring(now)) > 0:
            result.expiring += notified
            if notified < self._settings.batch_size:
                break
        return result

    async def claim_due(self, now: datetime) -> int:
        """Claim one batch of due certificates; return how many."""
        async with self._sessions() as session, session.begin():
            # The active CAs first (a handful of rows), so that the claim walks the partial
            # index `ix_certificates_renewal_due` in `renew_at` order and stops after one
            # batch. Joined in the same query, PostgreSQL fetched and sorted *every* due row
            # for each batch: quadratic in the number due (bench/renewal_scale.py).
            active_cas = (
                await session.exec(
                    select(CertificateAuthority.id).where(
                        CertificateAuthority.status == CAStatus.ACTIVE
                    )
                )
            ).all()
            if not active_cas:
                return 0
            due = (
                await session.exec(
                    select(Certificate.id, Certificate.application_id, Certificate.profile_id)
                    .where(
                        Certificate.status == CertificateStatus.ACTIVE,
                        col(Certificate.auto_renew),
                        col(Certificate.renewed_by_id).is_(None),
                        col(Certificate.renewing_request_id).is_(None),
                        col(Certificate.encrypted_private_key).is_not(None),
                        col(Certificate.renew_at) <= now,
                        col(Certificate.ca_id).in_(active_cas),
                    )
                    .order_by(col(Certificate.renew_at))
                    .limit(self._settings.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not due:
                return 0
            requests: list[dict[str, Any]] = []
            claims: list[tuple[UUID, UUID]] = []
            commands: list[tuple[str, CloudEvent[MessageData]]] = []
            for certificate_id, application_id, profile_id in due:
                request_id = uuid4()
                requests.append(
                    new_request_row(
                        id=request_id,
                        kind=RequestKind.RENEW,
                        application_id=application_id,
                        profile_id=profile_id,
                        params=_AUTO_RENEWAL,
                        now=now,
                        renewal_of_id=certificate_id,
                    )
                )
                claims.append((certificate_id, request_id))
                command = RenewCertificate(
                    request_id=request_id,
                    certificate_id=certificate_id,
                    application_id=application_id,
                )
                commands.append(
                    (self._subjects.cmd_renew, CloudEvent.wrap(command, source=SOURCE, now=now))
                )
            await session.exec(sa.insert(CertificateRequest), params=requests)
            claiming = await session.connection()
            await claiming.execute(
                _CLAIM, {"ids": [c[0] for c in claims], "requests": [c[1] for c in claims]}
            )
            await enqueue_many(session, commands)
        self._after_commit()
        RENEWALS_DUE.inc(len(due))
        return len(due)

    async def mark_expired(self, now: datetime) -> int:
        """Flip certificates past `not_after` to `expired` and announce `certificate.expired`."""
        async with self._sessions() as session, session.begin():
            expired = (
                select(Certificate.id)
                .where(
                    col(Certificate.status).in_(
                        [CertificateStatus.ACTIVE.value, CertificateStatus.RENEWED.value]
                    ),
                    col(Certificate.not_after) <= now,
                )
                .limit(10 * self._settings.batch_size)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            rows = (
                await session.exec(
                    sa.update(Certificate)
                    .where(col(Certificate.id).in_(expired))
                    .values(status=CertificateStatus.EXPIRED.value, updated_at=now)
                    .returning(
                        col(Certificate.id),
                        col(Certificate.application_id),
                        col(Certificate.not_after),
                    )
                )
            ).all()
            if not rows:
                return 0
            slugs = dict(
                (
                    await session.exec(
                        select(Application.id, Application.slug).where(
                            col(Application.id).in_({r[1] for r in rows})
                        )
                    )
                ).all()
            )
            notices: list[tuple[str, CloudEvent[MessageData]]] = []
            for certificate_id, application_id, not_after in rows:
                slug = slugs[application_id]
                event = CertificateExpired(
                    certificate_id=certificate_id,
                    application_id=application_id,
                    application=slug,
                    not_after=not_after,
                )
                subject = self._subjects.event(slug, CertificateExpired.event_name)
                notices.append(
                    (
                        subject,
                        CloudEvent.wrap(event, source=SOURCE, subject=str(certificate_id), now=now),
                    )
                )
            await enqueue_many(session, notices)
        self._after_commit()
        CERTIFICATES_EXPIRED.inc(len(rows))
        return len(rows)

    async def announce_expiring(self, now: datetime) -> int:
        """One batch of `certificate.expiring` notices, each at the smallest threshold crossed."""
        thresholds = sorted(self._settings.expiry_thresholds)
        if not thresholds:
            return 0
        crossed = sa.case(
            *[(col(Certificate.not_after) <= now + t, _days(t)) for t in thresholds],
            else_=None,
        )
        async with self._sessions() as session, session.begin():
            rows = (
                await session.exec(
                    select(
                        Certificate.id,
                        Certificate.application_id,
                        Application.slug,
                        Certificate.not_after,
                    )
                    .join(Application, col(Application.id) == col(Certificate.application_id))
                    .where(
                        col(Certificate.status) == CertificateStatus.ACTIVE,
                        col(Certificate.not_after) > now,
                        col(Certificate.not_after) <= now + thresholds[-1],
                        sa.or_(
                            col(Certificate.expiry_notified_days).is_(None),
                            col(Certificate.expiry_notified_days) > crossed,
                        ),
                    )
                    .order_by(col(Certificate.not_after))
                    .limit(self._settings.batch_size)
                    .with_for_update(skip_locked=True, of=Certificate)
                )
            ).all()
            if not rows:
                return 0
            notices: list[tuple[str, CloudEvent[MessageData]]] = []
            marks: list[dict[str, Any]] = []
            for certificate_id, application_id, slug, not_after in rows:
                days = _days(min(t for t in thresholds if not_after <= now + t))
                event = CertificateExpiring(
                    certificate_id=certificate_id,
                    application_id=application_id,
                    application=slug,
                    not_after=not_after,
                    threshold=format_duration(timedelta(days=days)),
                )
                notices.append(
                    (
                        self._subjects.event(slug, CertificateExpiring.event_name),
                        CloudEvent.wrap(event, source=SOURCE, subject=str(certificate_id), now=now),
                    )
                )
                marks.append({"id": certificate_id, "expiry_notified_days": days})
            await session.exec(sa.update(Certificate), params=marks)
            await enqueue_many(session, notices)
        self._after_commit()
        return len(rows)


def _days(threshold: timedelta) -> int:
    """A threshold as whole days, as stored in `expiry_notified_days` (at least 1)."""
    return max(int(threshold.total_seconds() // 86400), 1)
