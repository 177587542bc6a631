"""Scheduled CA take-overs: at a rolled-over CA's `takes_over_at`, its predecessor's profiles
move to it (`common.ca_rollover.take_over`, the function the api calls for "now").

The renewer runs it because it is the service that acts on time; rows are claimed with
`FOR UPDATE SKIP LOCKED`, so several replicas never move the same profiles twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from certforge.common.ca_rollover import take_over
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import AuditEvent, CertificateAuthority

log = logging.getLogger(__name__)


ACTOR = "certforge-renewer"
"""Who the audit log names for a take-over done on schedule: no person asked for it then."""


def _audit_entry(successor: CertificateAuthority, moved: int, now: datetime) -> AuditEvent:
    """The same action as `POST /cas/{id}/take-over`, done by the renewer when the time came,
    in the transaction that moves the profiles."""
    return AuditEvent(
        occurred_at=now,
        actor_name=ACTOR,
        action="ca.take_over",
        resource_type="ca",
        resource_id=str(successor.id),
        outcome="success",
        details={
            "takes_over_at": successor.takes_over_at.isoformat()
            if successor.takes_over_at
            else None,
            "profiles_moved": moved,
            "scheduled": True,
        },
    )


class ScheduledTakeOvers:
    def __init__(self, sessions: SessionFactory, interval: timedelta) -> None:
        self._sessions = sessions
        self._interval = interval

    async def run_due(self, now: datetime | None = None) -> int:
        """Carry out every take-over whose time has come; return how many CAs took over."""
        now = now or datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            due = (
                await session.exec(
                    select(CertificateAuthority)
                    .where(
                        col(CertificateAuthority.takes_over_at) <= now,
                        col(CertificateAuthority.took_over_at).is_(None),
                        col(CertificateAuthority.predecessor_id).is_not(None),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for successor in due:
                moved = await take_over(session, successor, now)
                session.add(_audit_entry(successor, moved, now))
                log.info("CA %s took over %d profile(s) as scheduled", successor.name, moved)
        return len(due)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduled CA take-over failed; the next pass retries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._interval.total_seconds())
