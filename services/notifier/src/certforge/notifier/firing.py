"""Recording that a rule fired, and what must be delivered because of it, in the caller's
transaction.

The firing's primary key (rule, subject, window) is the de-duplication: rows are inserted with
ON CONFLICT DO NOTHING and only those the insert returns get deliveries, so two replicas that
see the same certificate at once, a scan repeated every minute, an event redelivered, or a
notifier restarted mid-way all end with one alert. The deliveries (one per channel) are
inserted the same way and sent later by the delivery loop, so a slow peer never holds a scan
or the event consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.db.tables import AlertDelivery, AlertFiring
from certforge.notifier.alert import AlertItem
from certforge.notifier.matching import dedup_key
from certforge.notifier.rules import Rule


@dataclass(frozen=True)
class Candidate:
    """One subject a rule may fire for, judged by the rule's filters."""

    subject_kind: str
    subject_id: UUID
    window_key: str
    matched: bool
    item: AlertItem


async def fire(
    session: AsyncSession,
    rule: Rule,
    candidates: list[Candidate],
    now: datetime,
    *,
    digest_wait: timedelta = timedelta(0),
) -> int:
    """Record the firings; queue a delivery per channel for each new, matching one. Returns how
    many alerts fired (deliveries are per channel)."""
    if not candidates:
        return 0
    statement = (
        insert(AlertFiring)
        .values(
            [
                {
                    "rule_id": rule.id,
                    "subject_id": c.subject_id,
                    "window_key": c.window_key,
                    "matched": c.matched,
                    "created_at": now,
                }
                for c in candidates
            ]
        )
        .on_conflict_do_nothing()
        .returning(col(AlertFiring.subject_id), col(AlertFiring.window_key))
    )
    landed = set((await session.exec(statement)).all())
    fired = [c for c in candidates if c.matched and (c.subject_id, c.window_key) in landed]
    rows: list[dict[str, Any]] = []
    for candidate in fired:
        for channel in rule.channels:
            rows.append(_delivery(rule, candidate, channel, now, digest_wait))
    if rows:
        await session.exec(insert(AlertDelivery).values(rows).on_conflict_do_nothing())
    return len(fired)


def _delivery(
    rule: Rule,
    candidate: Candidate,
    channel: dict[str, Any],
    now: datetime,
    digest_wait: timedelta,
) -> dict[str, Any]:
    pagerduty = channel["type"] == "pagerduty"
    digest = rule.digest and not pagerduty  # an incident is resolved per certificate
    return {
        "id": uuid4(),
        "rule_id": rule.id,
        "application_id": rule.application_id,
        "subject_kind": candidate.subject_kind,
        "subject_id": candidate.subject_id,
        "window_key": candidate.window_key,
        "channel_id": UUID(channel["id"]),
        "channel_type": channel["type"],
        "action": "trigger",
        "status": "pending",
        "attempts": 0,
        "payload": candidate.item.model_dump(mode="json"),
        "dedup_key": (
            dedup_key(rule.id, candidate.subject_id, candidate.window_key) if pagerduty else None
        ),
        "digest": digest,
        "next_attempt_at": now + digest_wait if digest else now,
        "created_at": now,
        "updated_at": now,
    }


async def resolve_incidents(
    session: AsyncSession, certificate_ids: set[UUID], why: dict[UUID, str], now: datetime
) -> int:
    """Queue a PagerDuty resolve for every incident triggered about these certificates. A
    trigger not sent yet is dropped instead (`skipped`): nothing to resolve at PagerDuty."""
    if not certificate_ids:
        return 0
    triggers = list(
        await session.exec(
            select(AlertDelivery)
            .where(
                col(AlertDelivery.subject_id).in_(certificate_ids),
                col(AlertDelivery.dedup_key).is_not(None),
                AlertDelivery.action == "trigger",
                col(AlertDelivery.status).in_(["pending", "delivered"]),
            )
            .with_for_update(skip_locked=True)
        )
    )
    resolves: list[dict[str, Any]] = []
    for trigger in triggers:
        reason = why.get(trigger.subject_id, "resolved")
        if trigger.status == "pending":
            trigger.status = "skipped"
            trigger.last_error = f"not sent: the certificate was {reason} first"
            trigger.updated_at = now
            session.add(trigger)
            continue
        payload = dict(trigger.payload)
        payload["detail"] = reason
        resolves.append(
            {
                "id": uuid4(),
                "rule_id": trigger.rule_id,
                "application_id": trigger.application_id,
                "subject_kind": trigger.subject_kind,
                "subject_id": trigger.subject_id,
                "window_key": trigger.window_key,
                "channel_id": trigger.channel_id,
                "channel_type": trigger.channel_type,
                "action": "resolve",
                "status": "pending",
                "attempts": 0,
                "payload": payload,
                "dedup_key": trigger.dedup_key,
                "digest": False,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    if resolves:
        await session.exec(insert(AlertDelivery).values(resolves).on_conflict_do_nothing())
    return len(resolves)
