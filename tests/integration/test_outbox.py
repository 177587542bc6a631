"""The transactional outbox against real PostgreSQL and a real nats-server this module can stop.

The NATS here is a throwaway `nats-server -js` on a free port with its store in a temporary
directory (not the session's NATS): the outage test stops it and starts it again on the same
port and store, exactly what a NATS restart in production looks like to the relay.

The rows live in a database of this module's own (migrated like the session one): every relay
claims every unsent row of its table, so sharing the session database would let the API's and
issuer's in-process relays (connected to another NATS, where these test streams do not exist)
claim rows of these tests, and these relays theirs. Each test also gets its own namespace, so
its streams start empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory, create_engine, session_factory
from certforge.common.db.migrations import upgrade
from certforge.common.db.pool import LazyPool
from certforge.common.db.tables import OutboxMessage
from certforge.common.messaging import connect, ensure_streams
from certforge.common.outbox import (
    OutboxPublishError,
    OutboxRelay,
    Publisher,
    enqueue,
    message_row,
)
from certforge.common.settings import NatsSettings, OutboxSettings
from certforge.devstack import create_database, drop_database, start_nats
from certforge.devstack.ports import tcp_reachable
from certforge.devstack.process import ManagedProcess
from harness import Backends

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(90),
]

# Quick to notice an outage and quick to recover; every wait below is bounded.
FAST = OutboxSettings(
    batch_size=50,
    poll_interval_seconds=0.2,
    max_backoff_seconds=0.5,
    publish_timeout_seconds=1.0,
)
DUPLICATE_WINDOW = 120


class Probe(MessageData):
    event_type: ClassVar[str] = "io.certforge.test.probe.v1"
    n: int


def probe(n: int, **kwargs: Any) -> Any:
    return CloudEvent[Probe](
        source="/tests/outbox", type=Probe.event_type, data=Probe(n=n), **kwargs
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


# --- a NATS this module owns -------------------------------------------------------------------


class RestartableNats:
    """A nats-server on a fixed port and store directory that tests may stop and start again."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.process: ManagedProcess = start_nats(state_dir)
        self.port = self.process.port
        self.url = self.process.url

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        """Same port, same JetStream store (started from the calling thread: the server gets
        the parent-death signal of the thread that forks it, so use the main thread)."""
        self.process = start_nats(self.state_dir, port=self.port)


@pytest.fixture(scope="module")
def nats_server() -> Iterator[RestartableNats]:
    state_dir = Path(tempfile.mkdtemp(prefix="cf-ob-", dir="/tmp"))
    server = RestartableNats(state_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


# --- a database this module owns ---------------------------------------------------------------


@pytest.fixture(scope="module")
def outbox_database(backends: Backends) -> Iterator[str]:
    name = f"{backends.database_name}_outbox"
    url = asyncio.run(create_database(backends.server_url, name))
    upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(drop_database(backends.server_url, name))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(outbox_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(outbox_database, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
def sessions(engine: AsyncEngine) -> SessionFactory:
    return session_factory(engine)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def database(outbox_database: str) -> AsyncIterator[LazyPool]:
    """The plain pool the relay runs on (as each service's)."""
    pool = LazyPool(outbox_database, max_size=5)
    yield pool
    await pool.close()


@dataclass
class Stack:
    """What one test works with: its namespace's streams on the module's NATS, a client."""

    subjects: Subjects
    url: str
    nc: NatsClient
    js: JetStreamContext
    sessions: SessionFactory
    database: LazyPool
    clients: list[NatsClient] = field(default_factory=list)

    def event_subject(self, name: str = "certificate.issued") -> str:
        return self.subjects.event("shop", name)

    async def client(self) -> JetStreamContext:
        """Another connection (a second relay has its own, like a second replica)."""
        nc = await connect(self.url, name="certforge-test-outbox-2")
        self.clients.append(nc)
        return nc.jetstream()

    async def enqueue(self, count: int, *, start: int = 0, commit: bool = True) -> list[UUID]:
        """`count` events in one transaction, committed or rolled back; their ids."""
        ids = []
        async with self.sessions() as session, session.begin() as tx:
            for n in range(start, start + count):
                ids.append(enqueue(session, self.event_subject(), probe(n)).id)
            if not commit:
                await tx.rollback()
        return ids

    async def rows(self) -> dict[UUID, OutboxMessage]:
        async with self.sessions() as session:
            return {row.id: row for row in (await session.exec(select(OutboxMessage))).all()}

    async def unsent(self) -> set[UUID]:
        return {i for i, row in (await self.rows()).items() if row.sent_at is None}

    async def stream(self, name: str | None = None) -> list[tuple[str, str, bytes]]:
        """(subject, Nats-Msg-Id, payload) of every message in a stream, in stream order."""
        name = name or self.subjects.events_stream
        info = await self.js.stream_info(name)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            with contextlib.suppress(NotFoundError):
                msg = await self.js.get_msg(name, seq)
                found.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), msg.data))
        return found


@pytest_asyncio.fixture(loop_scope="session")
async def stack(
    nats_server: RestartableNats, sessions: SessionFactory, database: LazyPool
) -> AsyncIterator[Stack]:
    if not nats_server.process.running():  # an earlier test failed during its outage
        nats_server.start()
    subjects = Subjects(f"ob{secrets.token_hex(4)}")
    nc = await connect(nats_server.url, name="certforge-test-outbox")
    js = nc.jetstream()
    await ensure_streams(
        js, subjects, NatsSettings(namespace=subjects.namespace, duplicate_window_seconds=120)
    )
    async with sessions() as session, session.begin():
        await session.exec(delete(OutboxMessage))
    stack = Stack(
        subjects=subjects, url=nats_server.url, nc=nc, js=js, sessions=sessions, database=database
    )
    try:
        yield stack
    finally:
        for stream in (subjects.commands_stream, subjects.events_stream):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(js.delete_stream(stream), timeout=5)
        for client in [nc, *stack.clients]:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), timeout=5)
        async with sessions() as session, session.begin():
            await session.exec(delete(OutboxMessage))


@contextlib.asynccontextmanager
async def running(*relays: OutboxRelay) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Relays running as background tasks, stopped (and awaited, bounded) on exit."""
    tasks = [asyncio.create_task(relay.run(), name=f"relay-{i}") for i, relay in enumerate(relays)]
    try:
        yield tasks
    finally:
        for relay in relays:
            relay.stop()
        done, pending = await asyncio.wait(tasks, timeout=15)
        for task in pending:
            task.cancel()
        assert not pending, "a relay did not stop within 15 s"
        for task in done:
            task.result()  # a relay must never die of an exception


# --- (a) committed rows go out once, rolled-back ones never --------------------------------------


async def test_committed_rows_are_published_once_with_their_id(stack: Stack) -> None:
    traced = probe(99, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    async with stack.sessions() as session, session.begin():
        events = [enqueue(session, stack.event_subject(), probe(n)).id for n in range(2)]
        events.append(enqueue(session, stack.event_subject("certificate.renewed"), traced).id)
        command = enqueue(session, stack.subjects.cmd_issue, probe(7)).id
    rolled_back = await stack.enqueue(3, commit=False)

    rows = await stack.rows()
    assert set(rows) == {*events, command}, "a rolled-back transaction leaves no row"
    assert all(row.sent_at is None for row in rows.values())

    relay = OutboxRelay(stack.database, stack.js, FAST)
    before = datetime.now(UTC)
    assert await relay.publish_pending() == 4
    assert await relay.publish_pending() == 0, "a sent row is never published again"
    assert relay.published == 4

    rows = await stack.rows()
    for row in rows.values():
        assert row.sent_at is not None
        assert before <= row.sent_at <= datetime.now(UTC)
        assert row.attempts == 0

    in_events = await stack.stream()
    assert [msg_id for _, msg_id, _ in in_events] == [str(i) for i in events], "in commit order"
    assert {subject for subject, _, _ in in_events} == {
        stack.event_subject(),
        stack.event_subject("certificate.renewed"),
    }
    for row_id, (_, _, payload) in zip(events, in_events, strict=True):
        envelope = CloudEvent[Probe].model_validate_json(payload)
        assert envelope.id == row_id, "the CloudEvents id is the Nats-Msg-Id"
        assert envelope.type == Probe.event_type
    in_commands = await stack.stream(stack.subjects.commands_stream)
    assert [(s, i) for s, i, _ in in_commands] == [(stack.subjects.cmd_issue, str(command))]
    assert not {str(i) for i in rolled_back} & {i for _, i, _ in in_events + in_commands}

    traced_msg = await stack.js.get_msg(stack.subjects.events_stream, 3)
    assert traced_msg.headers is not None
    assert traced_msg.headers["traceparent"] == traced.traceparent
    assert traced_msg.headers["Nats-Msg-Id"] == str(traced.id)


async def test_published_cloudevents_say_so_in_content_type(stack: Stack) -> None:
    """Commands and events alike carry the CloudEvents structured-mode `Content-Type`, which
    the relay adds at publish time: the rows do not store it."""
    async with stack.sessions() as session, session.begin():
        event = enqueue(session, stack.event_subject(), probe(1))
        command = enqueue(session, stack.subjects.cmd_issue, probe(2))
    assert await OutboxRelay(stack.database, stack.js, FAST).publish_pending() == 2

    for stream, row in (
        (stack.subjects.events_stream, event),
        (stack.subjects.commands_stream, command),
    ):
        msg = await stack.js.get_last_msg(stream, row.subject)
        assert msg.headers is not None
        assert msg.headers["Content-Type"] == "application/cloudevents+json"
        assert msg.headers["Nats-Msg-Id"] == str(row.id)
        assert CloudEvent[Probe].model_validate_json(msg.data or b"").id == row.id
    assert all("Content-Type" not in row.headers for row in (await stack.rows()).values())


async def test_running_relay_publishes_on_wake_and_on_stop(stack: Stack) -> None:
    """`wake()` after a commit publishes at once, not at the next poll; `stop()` makes a last
    pass, so rows committed just before a shutdown are not left for the next start."""
    slow_poll = FAST.model_copy(update={"poll_interval_seconds": 60.0})
    relay = OutboxRelay(stack.database, stack.js, slow_poll)
    async with running(relay):
        await asyncio.sleep(0.3)  # the relay's first pass found nothing; now it sleeps 60 s
        woken = await stack.enqueue(3)
        started = time.monotonic()
        relay.wake()
        await eventually(
            lambda: _none_of(stack, woken), within=5, what="the woken relay to publish"
        )
        assert time.monotonic() - started < 2
        last = await stack.enqueue(2, start=3)  # committed, no wake: only the last pass sends it
        await asyncio.sleep(0.3)
        assert await stack.unsent() == set(last)
    assert await stack.unsent() == set()
    assert [i for _, i, _ in await stack.stream()] == [str(i) for i in woken + last]


async def _none_of(stack: Stack, ids: list[UUID]) -> bool:
    return not (await stack.unsent()) & set(ids)


# --- (b) NATS stopped: kept, then published once each --------------------------------------------


async def test_nats_outage_delays_and_loses_nothing(
    stack: Stack, nats_server: RestartableNats, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="certforge.common.outbox")
    relay = OutboxRelay(stack.database, stack.js, FAST)
    async with running(relay) as (task,):
        warm = await stack.enqueue(1)
        relay.wake()
        await eventually(lambda: _none_of(stack, warm), within=5, what="the warm-up message")

        outage_started = time.monotonic()
        await asyncio.to_thread(nats_server.stop)
        assert not tcp_reachable("127.0.0.1", nats_server.port)
        ids: list[UUID] = []
        for batch in range(4):  # several transactions, each waking the relay
            ids += await stack.enqueue(10, start=10 * batch)
            relay.wake()
        n = len(ids)

        def failures() -> int:
            return sum("outbox relay" in r.getMessage() for r in caplog.records)

        async def retried_twice() -> bool:
            return failures() >= 2

        await eventually(retried_twice, within=15, what="the relay to fail and retry")
        await asyncio.sleep(1.0)
        assert await stack.unsent() == set(ids), "NATS down: every row stays unsent"
        assert not task.done(), "the relay keeps running through the outage"
        rows = await stack.rows()
        assert all(rows[i].attempts >= 1 and rows[i].last_error for i in ids)
        assert any("retrying in" in r.getMessage() for r in caplog.records)

        nats_server.start()  # same port, same store
        outage = time.monotonic() - outage_started
        await eventually(
            lambda: _none_of(stack, ids), within=30, what="all rows published after the restart"
        )
        recovered = time.monotonic() - outage_started - outage

    await asyncio.sleep(1.0)  # a late re-publish (a reconnect flushing buffers) would show now
    stored = await stack.stream()
    msg_ids = [i for _, i, _ in stored]
    assert len(msg_ids) == n + 1, f"{len(msg_ids)} messages stored for {n + 1} rows"
    assert sorted(msg_ids) == sorted(str(i) for i in [*warm, *ids]), "each row exactly once"
    info = await stack.js.stream_info(stack.subjects.events_stream)
    assert info.state.messages == n + 1
    print(f"outage {outage:.1f} s with {failures()} failed passes; recovered in {recovered:.1f} s")


# --- (c) two relays over one table ---------------------------------------------------------------


class RecordingPublisher:
    """Counts what a relay really sends (JetStream de-duplication would hide a double send)."""

    def __init__(self, inner: Publisher, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.sent: list[str] = []
        self.acks: list[PubAck] = []

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109 - the Publisher protocol
        stream: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> object:
        assert headers is not None
        self.sent.append(headers["Nats-Msg-Id"])
        await asyncio.sleep(self.delay)  # a slow network: batches of the two relays overlap
        ack = await self.inner.publish(subject, payload, timeout=timeout, headers=headers)
        assert isinstance(ack, PubAck)
        self.acks.append(ack)
        return ack


async def test_two_relays_publish_each_row_once(stack: Stack) -> None:
    ids: list[UUID] = []
    for batch in range(6):
        ids += await stack.enqueue(20, start=20 * batch)
    small_batches = FAST.model_copy(update={"batch_size": 10})
    one = RecordingPublisher(await stack.client(), delay=0.02)
    two = RecordingPublisher(await stack.client(), delay=0.02)
    relays = (
        OutboxRelay(stack.database, one, small_batches),
        OutboxRelay(stack.database, two, small_batches),
    )
    async with running(*relays):
        await eventually(lambda: _none_of(stack, ids), within=30, what="both relays to finish")

    sent = one.sent + two.sent
    assert len(sent) == len(ids), "SKIP LOCKED: no row was claimed by both relays"
    assert sorted(sent) == sorted(str(i) for i in ids)
    assert one.sent, "both relays took part"
    assert two.sent, "both relays took part"
    assert relays[0].published + relays[1].published == len(ids)
    assert not any(ack.duplicate for ack in one.acks + two.acks)
    assert len(await stack.stream()) == len(ids)


# --- (d) a relay that died between publish and commit --------------------------------------------


class CrashAfterPublish(RecordingPublisher):
    """Publishes for real, then fails as if the process died before its transaction commits."""

    async def publish(self, *args: Any, **kwargs: Any) -> object:
        await super().publish(*args, **kwargs)
        raise ConnectionResetError("relay process died before commit")


async def test_republish_after_crash_is_deduplicated(stack: Stack) -> None:
    (row_id,) = await stack.enqueue(1)
    crashed = CrashAfterPublish(stack.js)
    with pytest.raises(OutboxPublishError, match="died before commit"):
        await OutboxRelay(stack.database, crashed, FAST).publish_pending()
    assert crashed.sent == [str(row_id)]
    assert [bool(ack.duplicate) for ack in crashed.acks] == [False]
    assert await stack.unsent() == {row_id}, "not committed: the row is still unsent"
    assert len(await stack.stream()) == 1, "but the message reached the stream"

    # Somebody (an operator, an old replica) publishes the very same id by hand as well.
    manual = await stack.js.publish(
        stack.event_subject(), b"{}", headers={"Nats-Msg-Id": str(row_id)}
    )
    assert manual.duplicate

    after = RecordingPublisher(stack.js)
    assert await OutboxRelay(stack.database, after, FAST).publish_pending() == 1
    assert [bool(ack.duplicate) for ack in after.acks] == [True], "JetStream drops the second copy"
    assert await stack.unsent() == set()
    stored = await stack.stream()
    assert [i for _, i, _ in stored] == [str(row_id)]
    envelope = CloudEvent[Probe].model_validate_json(stored[0][2])
    assert envelope.id == row_id, "the stored copy is the relay's, not the manual one"


# --- one bad row does not stall the others -------------------------------------------------------


async def test_a_row_without_stream_does_not_block_the_others(stack: Stack) -> None:
    async with stack.sessions() as session, session.begin():
        bad = enqueue(session, f"nowhere{secrets.token_hex(3)}.evt.x", probe(0)).id
    good = await stack.enqueue(3, start=1)
    relay = OutboxRelay(stack.database, stack.js, FAST)
    assert await relay.publish_pending() == 3
    rows = await stack.rows()
    assert rows[bad].sent_at is None
    assert rows[bad].attempts == 1
    assert rows[bad].last_error
    assert all(rows[i].sent_at is not None for i in good)
    with pytest.raises(OutboxPublishError):  # only the bad row left: nothing publishable
        await relay.publish_pending()
    assert (await stack.rows())[bad].attempts == 2


# --- (e) purge --------------------------------------------------------------------------------


async def test_purge_removes_only_old_sent_rows(stack: Stack) -> None:
    now = datetime.now(UTC)
    day = timedelta(hours=24)

    async def row(created: datetime, sent: datetime | None) -> UUID:
        message = OutboxMessage(
            id=uuid4(),
            subject=stack.event_subject(),
            payload=b"{}",
            created_at=created,
            sent_at=sent,
        )
        async with stack.sessions() as session, session.begin():
            session.add(message)
        return message.id

    for _ in range(3):
        await row(now - 3 * day, now - 2 * day)
    recent_sent = await row(now - 2 * day, now - timedelta(hours=1))
    old_unsent = await row(now - 3 * day, None)

    relay = OutboxRelay(stack.database, stack.js, FAST)  # retention 24 h
    assert await relay.purge(now) == 3
    assert set(await stack.rows()) == {recent_sent, old_unsent}, "unsent rows are never purged"
    assert await relay.purge(now + day) == 1
    assert set(await stack.rows()) == {old_unsent}

    # The running relay purges on its own: at its first pass, then every few minutes.
    stale = await row(now - 3 * day, now - 2 * day)
    async with running(OutboxRelay(stack.database, stack.js, FAST)):

        async def purged() -> bool:
            return stale not in await stack.rows()

        await eventually(purged, within=5, what="the running relay to purge")
    assert old_unsent not in await stack.unsent(), "the old unsent row went out meanwhile"


# --- (e) a writer publishes its own rows right after its commit (issue 17) --------------------


async def _commit_leased(stack: Stack, lease: timedelta) -> dict[str, Any]:
    row = message_row(stack.subjects.cmd_issue, probe(1), lease=lease)
    async with stack.sessions() as session, session.begin():
        session.add(OutboxMessage(**row))
    return row


async def test_a_writer_publishes_its_leased_row_at_once_and_relays_leave_it_alone(
    stack: Stack,
) -> None:
    row = await _commit_leased(stack, timedelta(seconds=30))
    other_replica = OutboxRelay(stack.database, await stack.client(), FAST)
    assert await other_replica.publish_pending() == 0, "a relay claimed a leased row"

    recorder = RecordingPublisher(stack.js)
    writer = OutboxRelay(stack.database, recorder, FAST)
    writer.publish_soon([row])

    async def sent() -> bool:
        return row["id"] not in await stack.unsent()

    await eventually(sent, within=5, what="the writer to publish and mark its row")
    assert recorder.sent == [str(row["id"])]
    assert writer.published == 1
    in_commands = await stack.stream(stack.subjects.commands_stream)
    assert [(s, i) for s, i, _ in in_commands] == [(stack.subjects.cmd_issue, str(row["id"]))]
    assert await other_replica.publish_pending() == 0, "a sent row is never published again"


class Refusing(RecordingPublisher):
    """NATS not answering: every publish times out."""

    async def publish(self, *args: Any, **kwargs: Any) -> object:
        self.sent.append(str(kwargs.get("headers", {}).get("Nats-Msg-Id")))
        raise TimeoutError("nats: timeout")


async def test_a_leased_row_its_writer_could_not_publish_goes_out_when_the_lease_ends(
    stack: Stack,
) -> None:
    """Delayed by the lease, never lost: the writer's publish failed (or it died after its
    commit); a relay publishes the row once the lease is over."""
    row = await _commit_leased(stack, timedelta(seconds=1))
    refusing = Refusing(stack.js)
    OutboxRelay(stack.database, refusing, FAST).publish_soon([row])

    async def tried() -> bool:
        return bool(refusing.sent)

    await eventually(tried, within=5, what="the writer's attempt", interval=0.02)
    assert row["id"] in await stack.unsent()

    relay = OutboxRelay(stack.database, stack.js, FAST)

    async def published_by_relay() -> bool:
        return await relay.publish_pending() == 1

    await eventually(published_by_relay, within=5, what="a relay to publish after the lease")
    assert row["id"] not in await stack.unsent()
    in_commands = await stack.stream(stack.subjects.commands_stream)
    assert [i for _, i, _ in in_commands] == [str(row["id"])]
