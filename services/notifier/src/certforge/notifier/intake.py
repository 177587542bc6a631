"""From events on the stream to alerts: the handler of the notifier's durable consumer.

A batch of events is decoded (pure, `matching.occurrence`); only when an application of the
batch has enabled rules for those events are the certificates or requests read, once per batch,
to judge the rules' filters and to fix what each alert says. Firings and deliveries commit in
one transaction per batch, then the delivery loop is woken. Renewals and revocations also
queue the PagerDuty resolves of the replaced or revoked certificate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from nats.aio.msg import Msg
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.alerts import AlertEvent
from certforge.common.consumer import ACK, TERM, Settlement
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import AlertRule, Certificate, CertificateRequest, Profile
from certforge.notifier.alert import AlertItem
from certforge.notifier.firing import Candidate, fire, resolve_incidents
from certforge.notifier.matching import (
    Occurrence,
    happened_before,
    names_of,
    occurrence,
    resolves,
)
from certforge.notifier.rules import Rule

log = logging.getLogger(__name__)


class Intake:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        digest_wait: timedelta,
        after_commit: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._digest_wait = digest_wait
        self._after_commit = after_commit
        self._clock = clock

    async def handle(self, messages: list[Msg]) -> list[Settlement]:
        settlements: list[Settlement] = []
        occurrences: list[Occurrence] = []
        resolved: dict[UUID, str] = {}
        for msg in messages:
            try:
                envelope: dict[str, Any] = orjson.loads(msg.data)
                found = occurrence(envelope)
                certificate = resolves(envelope)
            except (ValueError, KeyError, TypeError):
                log.error("ignoring an undecodable event on %s", msg.subject)
                settlements.append(TERM)
                continue
            settlements.append(ACK)
            if found is not None:
                occurrences.append(found)
            if certificate is not None:
                renewal = found is not None and found.event is AlertEvent.RENEWED
                resolved[certificate] = "renewed" if renewal else "revoked"
        if occurrences or resolved:
            await self._record(occurrences, resolved)
        return settlements

    async def _record(self, occurrences: list[Occurrence], resolved: dict[UUID, str]) -> None:
        now = self._clock()
        queued = 0
        async with self._sessions() as session, session.begin():
            rules = await _rules_for(session, occurrences)
            if rules:
                items = await _items(session, occurrences)
                for rule in rules:
                    candidates = [
                        _candidate(rule, o, items[o.subject_id])
                        for o in occurrences
                        if o.application_id == rule.application_id
                        and o.event == rule.event
                        and o.subject_id in items
                        and not happened_before(o, rule.created_at)
                    ]
                    queued += await fire(
                        session, rule, candidates, now, digest_wait=self._digest_wait
                    )
            queued += await resolve_incidents(session, set(resolved), resolved, now)
        if queued:
            self._after_commit()


async def _rules_for(session: AsyncSession, occurrences: list[Occurrence]) -> list[Rule]:
    if not occurrences:
        return []
    rows = await session.exec(
        select(AlertRule).where(
            col(AlertRule.enabled),
            col(AlertRule.application_id).in_({o.application_id for o in occurrences}),
            col(AlertRule.event).in_({o.event.value for o in occurrences}),
        )
    )
    return [Rule.of(r) for r in rows]


_Facts = tuple[AlertItem, dict[str, Any]]
"""What an alert says about a subject, and the subject's metadata tags (for filters)."""


async def _items(session: AsyncSession, occurrences: list[Occurrence]) -> dict[UUID, _Facts]:
    """Each subject's facts, read once per batch."""
    by_id: dict[UUID, _Facts] = {}
    certificate_ids = {o.subject_id for o in occurrences if o.subject_kind == "certificate"}
    if certificate_ids:
        rows = await session.exec(
            select(Certificate, Profile.slug)
            .join(Profile, col(Profile.id) == col(Certificate.profile_id))
            .where(col(Certificate.id).in_(certificate_ids))
        )
        for certificate, slug in rows:
            item = AlertItem.of_certificate(certificate, slug)
            by_id[certificate.id] = (item, dict(certificate.tags))
    request_ids = {o.subject_id for o in occurrences if o.subject_kind == "request"}
    if request_ids:
        rows_r = await session.exec(
            select(CertificateRequest, Profile.slug)
            .join(Profile, col(Profile.id) == col(CertificateRequest.profile_id))
            .where(col(CertificateRequest.id).in_(request_ids))
        )
        for request, slug in rows_r:
            params = request.params
            subject = params.get("subject") or {}
            names = names_of(subject.get("common_name"), params.get("sans") or [])
            item = AlertItem(
                kind="request",
                id=request.id,
                name=names[0] if names else str(request.id),
                names=names,
                profile=slug,
            )
            by_id[request.id] = (item, dict(params.get("metadata") or {}))
    return by_id


def _candidate(rule: Rule, found: Occurrence, facts: _Facts) -> Candidate:
    item, tags = facts
    matched = rule.filters.matches(item.profile, item.names, tags)
    said = item.model_copy(update={"detail": found.detail})
    return Candidate(found.subject_kind, found.subject_id, found.window_key, matched, said)
