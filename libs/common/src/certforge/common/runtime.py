"""What every worker service (issuer, renewer, syncer) shares: connect, run, stop gracefully.

`main` of a worker builds a `Worker` with its handlers and background loops and calls `run()`.
On SIGTERM/SIGINT the worker stops taking work (stops its NATS subscriptions, letting
in-flight handlers finish), stops its loops, makes a last outbox pass while NATS is still
connected, and only then closes the NATS connection, the probe server and the database pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any

import orjson
import uvicorn
import uvloop
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory, create_engine, session_factory
from certforge.common.db.pool import LazyPool
from certforge.common.health import LEGACY, LIVE, READY, is_ready, readiness
from certforge.common.messaging import ensure_streams, server_list, when_reachable
from certforge.common.metrics import exposition
from certforge.common.outbox import OutboxRelay
from certforge.common.settings import CommonSettings
from certforge.common.tracing import setup_tracing

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def serve(worker: Worker) -> None:
    """Run `worker` until it stops, on uvloop: libuv's event loop costs less per iteration and
    per socket write than asyncio's own, which showed in the issuer's profile."""
    uvloop.run(worker.run())


class Worker:
    def __init__(self, name: str, settings: CommonSettings) -> None:
        self.name = name
        self.settings = settings
        self.subjects = Subjects(settings.nats.namespace)
        self.engine: AsyncEngine = create_engine(
            settings.database_url.get_secret_value(), pool_size=settings.database_pool_size
        )
        self.sessions: SessionFactory = session_factory(self.engine)
        self.database = LazyPool(
            settings.database_url.get_secret_value(), max_size=settings.database_pool_size
        )
        """Plain asyncpg for a worker's hot path (the issuer's batches); the ORM elsewhere."""
        self.broker = NatsBroker(
            server_list(settings.nats_url),
            name=f"certforge-{name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            logger=logging.getLogger("faststream"),
        )
        self.relay: OutboxRelay | None = None
        self._loops: list[Loop] = []
        self._stopping = asyncio.Event()
        setup_tracing(name, settings.otlp_endpoint)

    def add_loop(self, loop: Loop) -> None:
        """A background coroutine that runs until the stop event is set."""
        self._loops.append(loop)

    async def ready(self) -> dict[str, str]:
        """Readiness (`certforge.common.health`): database, NATS connection and streams."""
        try:
            nats: NatsClient | None = self.broker.connection
        except Exception:  # FastStream raises before the first connect and after the stop
            nats = None
        return await readiness(self.engine, nats, self.subjects, self.settings.nats)

    def stop(self) -> None:
        self._stopping.set()

    async def _connect(self) -> JetStreamContext:
        """Connect (a no-op once connected) and declare the streams: safe to repeat."""
        connection = await self.broker.connect()
        js = connection.jetstream()
        await ensure_streams(js, self.subjects, self.settings.nats)
        return js

    def wake_relay(self) -> None:
        """Call after committing outbox rows, so they are published now, not at the next poll."""
        if self.relay is not None:
            self.relay.wake()

    async def run(
        self,
        on_started: Callable[[], Awaitable[None]] | None = None,
        *,
        handle_signals: bool = True,
    ) -> None:
        """Serve until SIGTERM/SIGINT (or `stop()`, for tests that run a worker in-process)."""
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)

        js = await when_reachable(self._connect, log)
        await self.broker.start()
        self.relay = OutboxRelay(self.database, js, self.settings.outbox)
        relay = asyncio.create_task(self.relay.run(), name="outbox-relay")
        loops = [asyncio.create_task(fn(self._stopping), name=fn.__name__) for fn in self._loops]
        for task in loops:
            task.add_done_callback(self._loop_ended)
        health = self._health_server()
        probes = asyncio.create_task(health.serve(), name="health") if health is not None else None
        log.info("%s started", self.name)
        if on_started is not None:
            await on_started()

        await self._stopping.wait()
        log.info("%s stopping", self.name)
        # Take no new messages; handlers in flight finish and commit their outbox rows.
        for subscriber in self.broker.subscribers:
            with contextlib.suppress(Exception):
                await subscriber.stop()
        # The loops see the stop event and finish what they hold (committing outbox rows).
        if loops:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*loops, return_exceptions=True), timeout=15)
        # Then the relay makes its last pass over every row committed so far, which needs NATS
        # still connected: close the connection only after that.
        self.relay.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(relay, return_exceptions=True), timeout=10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.stop(), timeout=10)
        if health is not None and probes is not None:
            health.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(probes, return_exceptions=True), timeout=5)
        await self.database.close()
        await self.engine.dispose()
        log.info("%s stopped", self.name)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A background loop that dies before the worker stops leaves it serving nothing of
        that loop's work: say so loudly, with the exception."""
        if task.cancelled() or self._stopping.is_set():
            return
        log.error(
            "%s: loop %s ended before the service stopped; its work stops until a restart",
            self.name,
            task.get_name(),
            exc_info=task.exception(),
        )

    def _health_server(self) -> uvicorn.Server | None:
        if self.settings.health_port is None:
            return None
        config = uvicorn.Config(
            health_app(self.ready),
            host="0.0.0.0",  # noqa: S104 - probes come from the kubelet, not loopback
            port=self.settings.health_port,
            log_level="warning",
            lifespan="off",
        )
        return EmbeddedServer(config)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside a process that handles its own signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def health_app(ready: Callable[[], Awaitable[Mapping[str, str]]]) -> Any:
    """A minimal ASGI app: `/livez`, `/readyz` (meanings in `certforge.common.health`), the
    deprecated `/healthz` (liveness, as it always meant on the workers) and `/metrics`."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        content_type = "application/json"
        if path in (LIVE, LEGACY):
            status, body = 200, b'{"status":"ok"}'
        elif path == READY:
            checks = await ready()
            ok = is_ready(checks)
            status = 200 if ok else 503
            body = orjson.dumps({"status": "ok" if ok else "unready", **checks})
        elif path == "/metrics":
            status = 200
            body, content_type = exposition()
        else:
            status, body = 404, b'{"status":"not found"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
