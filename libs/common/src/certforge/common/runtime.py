"""What every worker service (issuer, renewer, syncer) shares: connect, run, stop gracefully.

`main` of a worker builds a `Worker` with its handlers and background loops and calls `run()`.
On SIGTERM/SIGINT the worker stops taking work (drains its NATS subscriptions, letting
in-flight handlers finish), stops its loops, makes a last outbox pass, and closes connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import uvicorn
from faststream.nats import NatsBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory, create_engine, session_factory
from certforge.common.messaging import ensure_streams
from certforge.common.outbox import OutboxRelay
from certforge.common.settings import CommonSettings

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Worker:
    def __init__(self, name: str, settings: CommonSettings) -> None:
        self.name = name
        self.settings = settings
        self.subjects = Subjects(settings.nats.namespace)
        self.engine: AsyncEngine = create_engine(
            settings.database_url.get_secret_value(), pool_size=settings.database_pool_size
        )
        self.sessions: SessionFactory = session_factory(self.engine)
        self.broker = NatsBroker(
            settings.nats_url,
            name=f"certforge-{name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            logger=logging.getLogger("faststream"),
        )
        self.relay: OutboxRelay | None = None
        self._loops: list[Loop] = []
        self._stopping = asyncio.Event()

    def add_loop(self, loop: Loop) -> None:
        """A background coroutine that runs until the stop event is set."""
        self._loops.append(loop)

    async def ready(self) -> bool:
        """Readiness: the database answers and NATS is connected."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return bool(self.broker.connection and self.broker.connection.is_connected)

    def stop(self) -> None:
        self._stopping.set()

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

        await self.broker.connect()
        js = self.broker.connection.jetstream()
        await ensure_streams(js, self.subjects, self.settings.nats)
        await self.broker.start()
        self.relay = OutboxRelay(self.sessions, js, self.settings.outbox)
        tasks = [asyncio.create_task(self.relay.run(), name="outbox-relay")]
        tasks += [asyncio.create_task(fn(self._stopping), name=fn.__name__) for fn in self._loops]
        health = self._health_server()
        if health is not None:
            tasks.append(asyncio.create_task(health.serve(), name="health"))
        log.info("%s started", self.name)
        if on_started is not None:
            await on_started()

        await self._stopping.wait()
        log.info("%s stopping", self.name)
        await self.broker.stop()
        self.relay.stop()
        if health is not None:
            health.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=15)
        await self.engine.dispose()
        log.info("%s stopped", self.name)

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


def health_app(ready: Callable[[], Awaitable[bool]]) -> Any:
    """A minimal ASGI app: `/healthz` (alive) and `/readyz` (database and NATS reachable)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            status, body = 200, b'{"status":"ok"}'
        elif path == "/readyz":
            ok = await ready()
            status, body = (200, b'{"status":"ready"}') if ok else (503, b'{"status":"unready"}')
        else:
            status, body = 404, b'{"status":"not found"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
