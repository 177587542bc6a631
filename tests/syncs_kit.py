"""Helpers of the sync integration tests (`test_syncs_*.py`): the API calls, waits on sync
states, the events stream, a real webhook receiver that verifies signatures, and a TCP proxy
that can stop listening and come back on the same port (a destination that is down a while).

The destinations themselves (moto_server, OpenBao, the fake Kubernetes and Azure servers) are
the fixtures of the plugin tests (`test_sync_plugin_*.py`), imported from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import web

from admin_kit import API, every, ok, uid
from certforge.syncer.plugins.webhook import SIGNATURE_HEADER, verify
from lifecycle_kit import stream_messages

State = dict[str, Any]


def syncs_url(app: str) -> str:
    return f"{API}/applications/{app}/syncs"


def sync_body(kind: str, settings: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": uid(kind), "kind": kind, "settings": settings, **fields}


async def create_sync(
    client: httpx.AsyncClient, app: str, kind: str, settings: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """POST a sync; assert 201 and return it."""
    created: dict[str, Any] = ok(
        await client.post(syncs_url(app), json=sync_body(kind, settings, **fields)), 201
    )
    return created


async def states(client: httpx.AsyncClient, app: str, sync_id: str) -> list[State]:
    listed: list[State] = await every(client, f"{syncs_url(app)}/{sync_id}/certificates")
    return listed


async def wait_state(
    client: httpx.AsyncClient,
    app: str,
    sync_id: str,
    check: Callable[[State], bool],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 - a deadline for the polling, not for one call
    what: str = "sync state",
) -> State:
    """Poll `GET …/syncs/{id}/certificates` until a state passes `check`; return it."""
    deadline = time.monotonic() + timeout
    seen: list[State] = []
    while time.monotonic() < deadline:
        seen = await states(client, app, sync_id)
        for state in seen:
            if check(state):
                return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not reached after {timeout:.0f}s; states: {seen}")


def status_of(
    certificate_id: str, *statuses: str, action: str | None = None
) -> Callable[[State], bool]:
    """A `wait_state` check: the lineage's state is about `certificate_id`, in `statuses`."""

    def check(state: State) -> bool:
        return (
            state["certificate_id"] == certificate_id
            and state["status"] in statuses
            and (action is None or state["action"] == action)
        )

    return check


async def wait_status(
    client: httpx.AsyncClient,
    app: str,
    sync_id: str,
    certificate_id: str,
    *statuses: str,
    timeout: float = 20.0,  # noqa: ASYNC109 - a deadline for the polling
) -> State:
    return await wait_state(
        client,
        app,
        sync_id,
        status_of(certificate_id, *statuses),
        timeout=timeout,
        what=f"certificate {certificate_id} {'/'.join(statuses)}",
    )


async def eventually(
    probe: Callable[[], Any],
    timeout: float = 20.0,  # noqa: ASYNC109 - a deadline for the polling
    what: str = "condition",
) -> Any:
    """Call `probe` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached after {timeout:.0f}s"
        await asyncio.sleep(0.1)


async def sync_events(api_app: Any, app: str, name: str) -> list[dict[str, Any]]:
    """Every `sync.succeeded` / `sync.failed` (`name`) event of `app` on the events stream."""
    context = api_app.state.certforge
    return await stream_messages(
        context.nats.jetstream(), context.subjects.events_stream, context.subjects.event(app, name)
    )


async def wait_sync_event(
    api_app: Any,
    app: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the polling
) -> dict[str, Any]:
    """The first `name` event of `app` whose `data` passes `check` (the outbox relays it)."""

    async def probe() -> dict[str, Any] | None:
        for event in await sync_events(api_app, app, name):
            if check(event["data"]):
                return event
        return None

    found: dict[str, Any] = await eventually(probe, timeout, f"{name} event of {app}")
    return found


async def names_in(path: str | os.PathLike[str]) -> list[str]:
    """The sorted entries of a directory (read off the event loop)."""
    return sorted(await asyncio.to_thread(os.listdir, path))


# --- a webhook receiver -------------------------------------------------------------------------


@dataclass
class Hook:
    """One webhook endpoint of the receiver: its secret, its scripted answers, what it got."""

    secret: bytes
    plan: list[int] = field(default_factory=list)
    """Statuses for the next requests, in order; then `status`."""
    status: int = 200
    received: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(status answered, CloudEvent) of every correctly signed request."""
    bad_signatures: int = 0

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 2xx: what the receiver's owner acted on."""
        return [event for status, event in self.received if status < 300]

    def accepted_of(self, event_type: str, lineage_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.accepted
            if e["type"] == event_type and e["data"].get("lineage_id") == lineage_id
        ]


PUSHED = "io.certforge.sync.certificate.pushed.v1"
REMOVED = "io.certforge.sync.certificate.removed.v1"


class WebhookReceiver:
    """A real HTTP server (aiohttp, on the test loop) that verifies `Certforge-Signature` with
    `plugins.webhook.verify` and records events per hook path."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def hook(self, *, plan: list[int] | None = None, status: int = 200) -> tuple[str, Hook]:
        """A new endpoint: its URL and its `Hook`."""
        name = uid("hook")
        hook = Hook(secret=uid("secret-0123456789").encode(), plan=list(plan or []), status=status)
        self.hooks[name] = hook
        return f"http://127.0.0.1:{self.port}/hooks/{name}", hook

    async def _receive(self, request: web.Request) -> web.Response:
        hook = self.hooks.get(request.match_info["name"])
        if hook is None:
            return web.Response(status=404)
        body = await request.read()
        header = request.headers.get(SIGNATURE_HEADER, "")
        if not verify(hook.secret, header, body, now=int(time.time())):
            hook.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        status = hook.plan.pop(0) if hook.plan else hook.status
        hook.received.append((status, orjson.loads(body)))
        return web.Response(status=status, text="ok" if status < 300 else "refused")


def webhook_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, **extra}


def webhook_credentials(hook: Hook) -> dict[str, Any]:
    return {"hmac_secret": hook.secret.decode()}


# --- a destination that goes away and comes back ----------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_port`; `down()` stops listening (connections are
    refused, as when the destination's process is stopped) and `up()` listens again on the
    same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> TcpProxy:
        self._server = await asyncio.start_server(
            self._forward, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections from here on
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        self._pipes.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._pipes.difference_update(tasks)
