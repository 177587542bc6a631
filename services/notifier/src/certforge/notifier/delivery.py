"""Sending what fired: lease due deliveries, send each (or each digest) through its channel,
record the outcome.

Steps of one pass:
1. lease due `pending` rows (`FOR UPDATE SKIP LOCKED`, then `lease_until` set and committed),
   plus, for digest rules, every other fresh pending row of the same rule, so one message lists
   them all; the lease, not an open transaction, covers the send, so a slow peer holds no lock
   and a notifier that dies mid-send leaves its rows due again when the lease ends;
2. group: a digest rule's rows per (rule, channel, action), any other row alone;
3. send every group at once, each within the channel timeout;
4. record: `delivered`; or `pending` again after a jittered exponential delay
   (`backoff_delay`); or `failed` once the peer refused the request (4xx) or `max_attempts` is
   reached, with an `alert.delivery_failed` event in the same transaction.

A send that succeeded but whose record was lost (a crash between the two) is sent again after
the lease: delivery is at least once, and the `webhook-id` / PagerDuty `dedup_key` / Message-ID
stay the same so receivers can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import httpx
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.alerts import AlertEvent
from certforge.common.backoff import backoff_delay
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import AlertDeliveryFailed
from certforge.common.contracts.rpc import AlertTestReply, ChannelTestResult
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import AlertDelivery, AlertRule, Application
from certforge.common.outbox import enqueue
from certforge.notifier.alert import Alert, AlertItem
from certforge.notifier.channels.base import ChannelError, PermanentChannelError
from certforge.notifier.channels.registry import build_sender
from certforge.notifier.rules import Rule
from certforge.notifier.settings import NotifierOptions

log = logging.getLogger(__name__)

SOURCE = "/certforge/notifier"
ERROR_LIMIT = 2000


@dataclass(frozen=True)
class Outcome:
    """How one send ended: `error` None is delivered; `final` fails at once (the peer refused);
    `skip` means nothing was sent on purpose (the rule or channel is gone)."""

    error: str | None = None
    final: bool = False
    skip: bool = False


class Deliveries:
    def __init__(
        self,
        sessions: SessionFactory,
        keys: KeyRing,
        options: NotifierOptions,
        subjects: Subjects,
        *,
        after_commit: Callable[[], None] = lambda: None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._options = options
        self._subjects = subjects
        self._after_commit = after_commit
        self._rand = rand
        self._clock = clock
        self._wake = asyncio.Event()
        self.client = httpx.AsyncClient(
            timeout=options.timeout_seconds, follow_redirects=False, trust_env=False
        )
        self._send_timeout = max(options.timeout_seconds, options.smtp.timeout_seconds) + 5
        self._lease = timedelta(seconds=self._send_timeout * 2 + 30)

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    handled = await self.deliver_due()
                except Exception:
                    log.exception("delivering alerts failed; retrying")
                    handled = 0
                if handled >= self._options.delivery_batch_size:
                    continue
                self._wake.clear()
                waits = [
                    asyncio.ensure_future(stopping.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait(
                        waits,
                        timeout=self._options.poll_interval_seconds,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                for waiter in waits:
                    waiter.cancel()
        finally:
            await self.client.aclose()

    async def deliver_due(self) -> int:
        """One pass (steps 1 to 4); returns how many rows it leased."""
        now = self._clock()
        rows = await self._lease_due(now)
        if not rows:
            return 0
        groups: dict[tuple[Any, ...], list[AlertDelivery]] = {}
        for row in rows:
            key = (row.rule_id, row.channel_id, row.action) if row.digest else (row.id,)
            groups.setdefault(key, []).append(row)
        rules, slugs = await self._context({r.rule_id for r in rows})
        secrets: dict[UUID, dict[str, dict[str, str]]] = {}
        sends = [self._send(g, rules, slugs, secrets, now) for g in groups.values()]
        outcomes = await asyncio.gather(*sends)
        await self._record(list(zip(groups.values(), outcomes, strict=True)), rules, slugs)
        return len(rows)

    async def _lease_due(self, now: datetime) -> list[AlertDelivery]:
        until = now + self._lease
        free = sa.or_(
            col(AlertDelivery.lease_until).is_(None), col(AlertDelivery.lease_until) < now
        )
        async with self._sessions() as session, session.begin():
            due = (
                select(AlertDelivery.id)
                .where(
                    AlertDelivery.status == "pending",
                    col(AlertDelivery.next_attempt_at) <= now,
                    free,
                )
                .order_by(col(AlertDelivery.next_attempt_at))
                .limit(self._options.delivery_batch_size)
                .with_for_update(skip_locked=True)
            )
            ids = set((await session.exec(due)).all())
            if not ids:
                return []
            digest_rules = set(
                (
                    await session.exec(
                        select(AlertDelivery.rule_id).where(
                            col(AlertDelivery.id).in_(ids), col(AlertDelivery.digest)
                        )
                    )
                ).all()
            )
            if digest_rules:
                # The rest of each digest: fresh rows of the same rules, due or not yet.
                companions = (
                    select(AlertDelivery.id)
                    .where(
                        AlertDelivery.status == "pending",
                        col(AlertDelivery.digest),
                        AlertDelivery.attempts == 0,
                        col(AlertDelivery.rule_id).in_(digest_rules),
                        free,
                    )
                    .with_for_update(skip_locked=True)
                )
                ids |= set((await session.exec(companions)).all())
            await session.exec(
                sa.update(AlertDelivery)
                .where(col(AlertDelivery.id).in_(ids))
                .values(lease_until=until, updated_at=now)
            )
            rows = list(
                await session.exec(
                    select(AlertDelivery)
                    .where(col(AlertDelivery.id).in_(ids))
                    .order_by(col(AlertDelivery.created_at))
                )
            )
            for row in rows:
                session.expunge(row)
        return rows

    async def _context(self, rule_ids: set[UUID]) -> tuple[dict[UUID, Rule], dict[UUID, str]]:
        async with self._sessions() as session:
            rules = {
                r.id: Rule.of(r)
                for r in await session.exec(
                    select(AlertRule).where(col(AlertRule.id).in_(rule_ids))
                )
            }
            slugs = dict(
                (
                    await session.exec(
                        select(Application.id, Application.slug).where(
                            col(Application.id).in_({r.application_id for r in rules.values()})
                        )
                    )
                ).all()
            )
        return rules, slugs

    async def _send(
        self,
        group: list[AlertDelivery],
        rules: dict[UUID, Rule],
        slugs: dict[UUID, str],
        secrets: dict[UUID, dict[str, dict[str, str]]],
        now: datetime,
    ) -> Outcome:
        first = group[0]
        rule = rules.get(first.rule_id)
        if rule is None or not rule.enabled:
            return Outcome("the alert was disabled before this was sent", skip=True)
        channel = rule.channel(first.channel_id)
        if channel is None:
            return Outcome("the channel was removed from the alert before this was sent", skip=True)
        try:
            if rule.id not in secrets:
                secrets[rule.id] = rule.secrets(self._keys)
            sender = build_sender(
                channel, secrets[rule.id].get(str(first.channel_id), {}), self._options, self.client
            )
            alert = Alert(
                id=str(first.id if len(group) == 1 else _group_id(group)),
                rule_id=rule.id,
                rule=rule.name,
                event=rule.event,
                application=slugs.get(rule.application_id, str(rule.application_id)),
                items=[AlertItem.model_validate(r.payload) for r in group],
                action="resolve" if first.action == "resolve" else "trigger",
                digest=first.digest,
                dedup_key=first.dedup_key,
                occurred_at=first.created_at,
            )
            await asyncio.wait_for(sender.send(alert, now), timeout=self._send_timeout)
        except PermanentChannelError as exc:
            return Outcome(str(exc), final=True)
        except ChannelError as exc:
            return Outcome(str(exc))
        except TimeoutError:
            return Outcome("the channel did not answer in time")
        except Exception:
            log.exception("alert %s: sending through %s failed", rule.id, first.channel_type)
            return Outcome("internal error in the notifier")
        return Outcome()

    async def _record(
        self,
        results: list[tuple[list[AlertDelivery], Outcome]],
        rules: dict[UUID, Rule],
        slugs: dict[UUID, str],
    ) -> None:
        now = self._clock()
        announced = False
        async with self._sessions() as session, session.begin():
            for group, outcome in results:
                ids = [r.id for r in group]
                attempts = max(r.attempts for r in group) + 1
                values: dict[str, Any] = {"lease_until": None, "updated_at": now}
                if outcome.skip:
                    values |= {"status": "skipped", "last_error": outcome.error}
                elif outcome.error is None:
                    values |= {
                        "status": "delivered",
                        "attempts": attempts,
                        "delivered_at": now,
                        "last_error": None,
                    }
                elif outcome.final or attempts >= self._options.max_attempts:
                    values |= {
                        "status": "failed",
                        "attempts": attempts,
                        "last_error": outcome.error[:ERROR_LIMIT],
                    }
                    self._announce(session, group, outcome.error, attempts, rules, slugs)
                    announced = True
                else:
                    delay = backoff_delay(
                        attempts, base=2.0, cap=self._options.max_backoff_seconds, rand=self._rand
                    )
                    values |= {
                        "status": "pending",
                        "attempts": attempts,
                        "last_error": outcome.error[:ERROR_LIMIT],
                        "next_attempt_at": now + timedelta(seconds=delay),
                    }
                await session.exec(
                    sa.update(AlertDelivery).where(col(AlertDelivery.id).in_(ids)).values(**values)
                )
        if announced:
            self._after_commit()

    def _announce(
        self,
        session: AsyncSession,
        group: list[AlertDelivery],
        error: str,
        attempts: int,
        rules: dict[UUID, Rule],
        slugs: dict[UUID, str],
    ) -> None:
        first = group[0]
        rule = rules[first.rule_id]
        slug = slugs[rule.application_id]
        event = AlertDeliveryFailed(
            alert_id=rule.id,
            alert=rule.name,
            event=rule.event.value,
            application_id=rule.application_id,
            application=slug,
            channel_id=first.channel_id,
            channel_type=first.channel_type,
            deliveries=[r.id for r in group],
            subjects=[r.subject_id for r in group],
            error=error[:ERROR_LIMIT],
            attempts=attempts,
        )
        subject = self._subjects.event(slug, AlertDeliveryFailed.event_name)
        enqueue(session, subject, CloudEvent.wrap(event, source=SOURCE, subject=str(rule.id)))

    async def test(self, rule_id: UUID) -> AlertTestReply:
        """Send a sample through every channel of a rule; records nothing."""
        async with self._sessions() as session:
            row = await session.get(AlertRule, rule_id)
            slug = None
            if row is not None:
                app = await session.get(Application, row.application_id)
                slug = app.slug if app else None
        if row is None or slug is None:
            return AlertTestReply(ok=False, detail="no such alert")
        rule = Rule.of(row)
        secrets = rule.secrets(self._keys)
        now = self._clock()
        sample = sample_alert(rule, slug, now)
        results = await asyncio.gather(
            *(self._test_one(c, secrets.get(c["id"], {}), sample, now) for c in rule.channels)
        )
        failed = sum(not r.ok for r in results)
        detail = (
            f"every channel ({len(results)}) accepted the sample"
            if not failed
            else f"{failed} of {len(results)} channels failed"
        )
        return AlertTestReply(ok=not failed, detail=detail, channels=results)

    async def _test_one(
        self, channel: dict[str, Any], secrets: dict[str, str], alert: Alert, now: datetime
    ) -> ChannelTestResult:
        def result(ok: bool, detail: str) -> ChannelTestResult:
            return ChannelTestResult(
                channel_id=UUID(channel["id"]), type=channel["type"], ok=ok, detail=detail
            )

        try:
            sender = build_sender(channel, secrets, self._options, self.client)
            await asyncio.wait_for(sender.send(alert, now), timeout=self._send_timeout)
        except ChannelError as exc:
            return result(False, str(exc))
        except TimeoutError:
            return result(False, "the channel did not answer in time")
        except Exception:
            log.exception("testing a %s channel failed", channel["type"])
            return result(False, "internal error in the notifier")
        return result(True, "accepted")


def sample_alert(rule: Rule, application: str, now: datetime) -> Alert:
    """What `…/test` sends: a made-up certificate, named so nobody mistakes it for a real one."""
    item = AlertItem(
        kind="ca" if rule.event is AlertEvent.CA_EXPIRING else "certificate",
        id=uuid4(),
        name="certforge-test-alert.example",
        names=["certforge-test-alert.example"],
        profile=(rule.filters.profiles or ["sample"])[0],
        serial_number="00",
        not_after=now + (rule.before or timedelta(days=7)),
        detail="a test of this alert's channels",
    )
    sample_id = str(uuid4())
    return Alert(
        id=sample_id,
        rule_id=rule.id,
        rule=rule.name,
        event=rule.event,
        application=application,
        items=[item],
        dedup_key=f"certforge/test/{sample_id}",
        occurred_at=now,
    )


def _group_id(group: list[AlertDelivery]) -> UUID:
    """A digest's message id, the same on every retry of the same rows."""
    return uuid5(
        NAMESPACE_URL, "certforge:alert-digest:" + ",".join(sorted(str(r.id) for r in group))
    )
