"""The expiry scan: which certificates (and CAs) have entered a rule's `before` window.

Why a scan of its own rather than the renewer's `certificate.expiring` events: those are
announced at the renewer's fixed thresholds (30d, 7d, 1d), while a rule's window is anything
(`10d`, `36h`), and a rule created today must still alert about a certificate that crossed its
window yesterday. So each enabled expiry rule asks, per scan, for its application's active,
not-yet-renewed certificates expiring inside its window that have no firing for it yet:

    application_id = :app AND not_after > now AND not_after <= now + before AND status = active
    AND renewed_by_id IS NULL AND NOT EXISTS (firing of this rule, certificate and window)

which walks `ix_certificates_app_not_after` (application, not_after) and the firings' primary
key; it is bounded by `scan_batch_size` per query and repeated until a short batch. Each
certificate read gets a firing, matched by the rule's filters or not, so none is read twice.
Any number of notifier replicas may scan at once: the firing's primary key lets one win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.alerts import WINDOWED, AlertEvent
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import (
    AlertFiring,
    AlertRule,
    Certificate,
    CertificateAuthority,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import CAStatus, CertificateStatus
from certforge.notifier.alert import AlertItem
from certforge.notifier.firing import Candidate, fire
from certforge.notifier.matching import expiry_window_key
from certforge.notifier.rules import Rule
from certforge.notifier.settings import NotifierOptions

log = logging.getLogger(__name__)


class ExpiryScanner:
    def __init__(
        self,
        sessions: SessionFactory,
        options: NotifierOptions,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._options = options
        self._after_commit = after_commit

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                fired = await self.scan()
                if fired:
                    log.info("expiry scan: %d alerts fired", fired)
            except Exception:
                log.exception("expiry scan failed; the next scan retries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stopping.wait(), timeout=self._options.scan_interval.total_seconds()
                )

    async def scan(self, now: datetime | None = None) -> int:
        """One pass over every enabled expiry rule; returns the alerts fired."""
        now = now or datetime.now(UTC)
        async with self._sessions() as session:
            rows = await session.exec(
                select(AlertRule).where(
                    col(AlertRule.enabled),
                    col(AlertRule.event).in_([e.value for e in WINDOWED]),
                )
            )
            rules = [Rule.of(r) for r in rows]
        fired = 0
        for rule in rules:
            while True:
                read, count = await self._one_batch(rule, now)
                fired += count
                if read < self._options.scan_batch_size:
                    break
        if fired:
            self._after_commit()
        return fired

    async def _one_batch(self, rule: Rule, now: datetime) -> tuple[int, int]:
        assert rule.before is not None
        window = expiry_window_key(rule.event, rule.before)
        async with self._sessions() as session, session.begin():
            if rule.event is AlertEvent.EXPIRING:
                candidates = await self._certificates(session, rule, window, now)
            else:
                candidates = await self._cas(session, rule, window, now)
            count = await fire(session, rule, candidates, now)
        return len(candidates), count

    async def _certificates(
        self, session: AsyncSession, rule: Rule, window: str, now: datetime
    ) -> list[Candidate]:
        assert rule.before is not None
        fired = sa.exists().where(
            col(AlertFiring.rule_id) == rule.id,
            col(AlertFiring.subject_id) == col(Certificate.id),
            col(AlertFiring.window_key) == window,
        )
        rows = await session.exec(
            select(Certificate, Profile.slug)
            .join(Profile, col(Profile.id) == col(Certificate.profile_id))
            .where(
                col(Certificate.application_id) == rule.application_id,
                col(Certificate.not_after) > now,
                col(Certificate.not_after) <= now + rule.before,
                col(Certificate.status) == CertificateStatus.ACTIVE.value,
                col(Certificate.renewed_by_id).is_(None),
                ~fired,
            )
            .order_by(col(Certificate.not_after))
            .limit(self._options.scan_batch_size)
        )
        candidates = []
        for certificate, slug in rows:
            item = AlertItem.of_certificate(certificate, slug)
            matched = rule.filters.matches(slug, item.names, certificate.tags)
            candidates.append(Candidate("certificate", certificate.id, window, matched, item))
        return candidates

    async def _cas(
        self, session: AsyncSession, rule: Rule, window: str, now: datetime
    ) -> list[Candidate]:
        """The issuing CAs of the profiles attached to the application (a rule's profiles
        filter narrows them; its name pattern is matched against the CA's name)."""
        assert rule.before is not None
        fired = sa.exists().where(
            col(AlertFiring.rule_id) == rule.id,
            col(AlertFiring.subject_id) == col(CertificateAuthority.id),
            col(AlertFiring.window_key) == window,
        )
        rows = await session.exec(
            select(CertificateAuthority, Profile.slug)
            .join(Profile, col(Profile.ca_id) == col(CertificateAuthority.id))
            .join(ProfileAttachment, col(ProfileAttachment.profile_id) == col(Profile.id))
            .where(
                col(ProfileAttachment.application_id) == rule.application_id,
                col(CertificateAuthority.status) == CAStatus.ACTIVE.value,
                col(CertificateAuthority.not_after) > now,
                col(CertificateAuthority.not_after) <= now + rule.before,
                ~fired,
            )
            .limit(self._options.scan_batch_size)
        )
        found: dict[UUID, tuple[CertificateAuthority, list[str]]] = {}
        for ca, slug in rows:
            found.setdefault(ca.id, (ca, []))[1].append(slug)
        candidates = []
        for ca, slugs in found.values():
            matched = any(rule.filters.matches(s, [ca.name], {}) for s in slugs)
            item = AlertItem(
                kind="ca",
                id=ca.id,
                name=ca.name,
                names=[ca.name],
                profile=", ".join(sorted(slugs)),
                serial_number=ca.serial_number,
                not_after=ca.not_after,
            )
            candidates.append(Candidate("ca", ca.id, window, matched, item))
        return candidates
