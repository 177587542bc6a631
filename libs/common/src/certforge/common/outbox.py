"""Transactional outbox: a state change and the message announcing it commit together.

`enqueue` adds the message to the caller's open transaction. The `OutboxRelay` (a background
task in every service that enqueues) claims unsent rows with `FOR UPDATE SKIP LOCKED`, publishes
them to JetStream with the row id as `Nats-Msg-Id`, waits for the acknowledgements and marks the
rows sent in the same transaction. If NATS is slow or down the transaction rolls back, the rows
stay unsent and the relay retries with backoff: delayed, never lost. If the relay dies between
the publish and the commit, the next publish of the same id falls inside the stream's
duplicate window and is stored once.

Every row is a CloudEvents envelope (`message_row` takes nothing else: commands, events and sync
tasks alike), so the relay adds the structured-mode header `Content-Type:
application/cloudevents+json` as it publishes, instead of storing the same value in every row.

A writer that knows its rows may publish them itself right after its commit (`publish_soon`),
saving the relay's claim (BEGIN, SELECT … FOR UPDATE, UPDATE, COMMIT: four round trips) on the
issuance path: it writes them with a lease (`message_row(..., lease=...)` sets
`publish_after`), which keeps every relay off them until it ends, publishes them, and marks
them sent in one UPDATE per batch. Should it fail or die before, any relay publishes them when
the lease ends (delayed, never lost), and JetStream drops the second copy of one published
twice (the lease is far shorter than the duplicate window).

Rows of a batch succeed or fail one by one: a row JetStream refuses (say its subject belongs to
no stream) gets `attempts` and `last_error` recorded and is retried, while the rows after it are
still published; it cannot stall the outbox. Order is therefore not guaranteed across a failed
row, and consumers must not rely on it (they are idempotent by message id anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from sqlalchemy import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.backoff import backoff_delay
from certforge.common.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE, CloudEvent, MessageData
from certforge.common.db.columns import insertable
from certforge.common.db.pool import LazyPool, Row
from certforge.common.db.tables import OutboxMessage
from certforge.common.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from certforge.common.settings import OutboxSettings
from certforge.common.tracing import current_traceparent

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

log = logging.getLogger(__name__)


MESSAGE_COLUMNS = insertable(OutboxMessage)
"""The columns of an outbox INSERT written as plain SQL; `message_row` fills every one."""


DIRECT_LEASE = timedelta(seconds=5)
"""How long relays leave a row to the writer that publishes it itself (`publish_soon`)."""


def message_row(
    subject: str, event: CloudEvent[MessageData], *, lease: timedelta | None = None
) -> dict[str, Any]:
    """The outbox row that publishes `event` on `subject`. The current trace travels with it
    (CloudEvents `traceparent` extension and a NATS header). With a `lease` the writer will
    hand the row to `OutboxRelay.publish_soon` after its commit (relays wait that long)."""
    if event.traceparent is None:
        event.traceparent = current_traceparent()
    return {
        "id": event.id,
        "subject": subject,
        "payload": event.to_json(),
        "headers": {"traceparent": event.traceparent} if event.traceparent else {},
        "created_at": event.time,
        "sent_at": None,
        "attempts": 0,
        "last_error": None,
        "publish_after": event.time + lease if lease is not None else None,
    }


def enqueue(session: AsyncSession, subject: str, event: CloudEvent[MessageData]) -> OutboxMessage:
    """Add `event` to the session's transaction; it is published after the commit."""
    row = OutboxMessage(**message_row(subject, event))
    session.add(row)
    return row


async def enqueue_many(
    session: AsyncSession, messages: list[tuple[str, CloudEvent[MessageData]]]
) -> None:
    """`enqueue` for thousands of messages at once: one multi-row INSERT, no ORM objects."""
    if messages:
        await session.exec(
            insert(OutboxMessage), params=[message_row(s, event) for s, event in messages]
        )


class OutboxPublishError(RuntimeError):
    """No row of a batch could be published (NATS down or not answering)."""


class Publisher(Protocol):
    """What the relay needs from JetStream (nats-py's `JetStreamContext.publish` fits)."""

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109 - nats-py's signature
        stream: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> object: ...


_CLAIM_SQL = """
SELECT id, subject, payload, headers FROM outbox
WHERE sent_at IS NULL AND (publish_after IS NULL OR publish_after <= now())
ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
"""
"""Unsent rows in order; rows another relay holds, or their writer publishes, are skipped."""
_SENT_SQL = "UPDATE outbox SET sent_at = $2 WHERE id = ANY($1::uuid[])"
_FAILED_SQL = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::uuid[])"
)
_BACKLOG_SQL = "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL"


class OutboxRelay:
    """Publishes committed outbox rows. Plain SQL on the service's asyncpg pool: it runs twice
    for every certificate (the command, the event), so the ORM's cost showed in profiles."""

    def __init__(self, database: LazyPool, publisher: Publisher, settings: OutboxSettings) -> None:
        self._database = database
        self._publisher = publisher
        self._settings = settings
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_purge = datetime.min.replace(tzinfo=UTC)
        self._last_measure = datetime.min.replace(tzinfo=UTC)
        self._direct: list[Mapping[str, Any]] = []
        self._direct_task: asyncio.Task[None] | None = None
        self.published = 0

    def wake(self) -> None:
        """Tell the relay that rows were just committed, so it need not wait for its poll."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def publish_soon(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Publish rows this process has just committed, written with a lease (module
        docstring), now rather than through a claim; returns at once. Rows arriving while a
        batch is out go in the next one, so under load a batch costs one UPDATE. A stopped
        relay publishes nothing this way: the rows go out through a relay (this one's last
        pass, or another's) once their lease ends."""
        if self._stopping.is_set():
            return
        self._direct.extend(rows)
        if self._direct_task is None or self._direct_task.done():
            self._direct_task = asyncio.create_task(self._publish_direct(), name="outbox-direct")

    async def _publish_direct(self) -> None:
        while self._direct:
            rows, self._direct = self._direct, []
            results = await asyncio.gather(
                *(self._publish(row) for row in rows), return_exceptions=True
            )
            sent = [r["id"] for r, res in zip(rows, results, strict=True) if res is None]
            if len(sent) < len(rows):
                error = next(res for res in results if res is not None)
                log.warning(
                    "outbox: %d message(s) not published at once (a relay will when their "
                    "lease ends): %s",
                    len(rows) - len(sent),
                    _describe(error) if isinstance(error, BaseException) else error,
                )
            if not sent:
                continue
            try:
                db = await self._database.get()
                await db.execute(_SENT_SQL, sent, datetime.now(UTC))
            except Exception as exc:  # published: a relay re-publishes, JetStream drops it
                log.warning("outbox: could not mark %d message(s) sent: %s", len(sent), exc)
            self.published += len(sent)

    async def _publish(self, row: Row | Mapping[str, Any]) -> None:
        await self._publisher.publish(
            row["subject"],
            row["payload"],
            timeout=self._settings.publish_timeout_seconds,
            headers={
                **row["headers"],
                "Nats-Msg-Id": str(row["id"]),
                "Content-Type": CLOUDEVENTS_CONTENT_TYPE,
            },
        )

    async def run(self) -> None:
        """Publish until stopped; on stop, make one last pass so committed rows go out."""
        failures = 0
        while not self._stopping.is_set():
            try:
                sent = await self.publish_pending()
                failures = 0
                await self._purge_if_due()
                await self._measure_if_due()
            except Exception as exc:  # any failure: keep the rows, wait, retry
                failures += 1
                # Jittered: the relays of every replica failed together (NATS restarting) and
                # would otherwise all retry at the same instants.
                delay = backoff_delay(failures, base=0.2, cap=self._settings.max_backoff_seconds)
                log.warning("outbox relay: %s; retrying in %.1fs", _describe(exc), delay)
                await self._sleep(delay)
                continue
            if sent < self._settings.batch_size:
                await self._sleep(self._settings.poll_interval_seconds)
        with contextlib.suppress(Exception):
            if self._direct_task is not None:
                await asyncio.wait_for(asyncio.shield(self._direct_task), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.publish_pending(), timeout=5)

    async def _measure_if_due(self) -> None:
        """Refresh the backlog gauges every few seconds (cheap: the unsent-row index)."""
        now = datetime.now(UTC)
        if now - self._last_measure < timedelta(seconds=5):
            return
        self._last_measure = now
        db = await self._database.get()
        async with db.acquire() as conn:
            count, age = await backlog(conn)
        OUTBOX_BACKLOG.set(count)
        OUTBOX_OLDEST_AGE.set(age)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)
        self._wakeup.clear()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; return how many were published.

        Raises `OutboxPublishError` when every row of a non-empty batch failed (NATS down or
        slow), so that the caller backs off; their attempts are recorded all the same.
        """
        failures: dict[str, list[UUID]] = {}
        first_error: BaseException | None = None
        db = await self._database.get()
        async with db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM_SQL, self._settings.batch_size)
            if not rows:
                return 0
            # Started in order, so NATS receives the messages in row order; awaited together,
            # so a batch costs one round trip, not one per row.
            results = await asyncio.gather(
                *(self._publish(row) for row in rows), return_exceptions=True
            )
            sent: list[UUID] = []
            for row, result in zip(rows, results, strict=True):
                if not isinstance(result, BaseException):
                    sent.append(row["id"])
                    continue
                if not isinstance(result, Exception):
                    raise result  # cancellation and the like: not a publish failure
                first_error = first_error or result
                failures.setdefault(_describe(result)[:1000], []).append(row["id"])
            if sent:
                await conn.execute(_SENT_SQL, sent, datetime.now(UTC))
            for error, ids in failures.items():
                await conn.execute(_FAILED_SQL, ids, error)
        self.published += len(sent)
        if first_error is not None:
            failed = sum(len(ids) for ids in failures.values())
            if not sent:
                raise OutboxPublishError(
                    f"{failed} message(s) not published: {_describe(first_error)}"
                ) from first_error
            log.warning(
                "outbox relay: %d message(s) published, %d failed and will be retried: %s",
                len(sent),
                failed,
                "; ".join(failures),
            )
        return len(sent)

    async def purge(self, now: datetime | None = None) -> int:
        """Delete rows sent more than `retention_hours` ago; return how many. Unsent rows are
        never purged, however old."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(hours=self._settings.retention_hours)
        db = await self._database.get()
        status = await db.execute("DELETE FROM outbox WHERE sent_at < $1", cutoff)
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def _purge_if_due(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_purge < timedelta(minutes=5):
            return
        self._last_purge = now
        purged = await self.purge(now)
        if purged:
            log.info("outbox relay: purged %d sent message(s)", purged)


async def backlog(conn: Connection) -> tuple[int, float]:
    """Unsent rows and the age in seconds of the oldest one (for metrics and health)."""
    row = await conn.fetchrow(_BACKLOG_SQL)
    assert row is not None
    count, oldest = row[0], row[1]
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return int(count), age


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
