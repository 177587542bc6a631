"""Error answers that keep the connection (issue 20, defect 5).

A refusal the API knows how to answer (NUL text PostgreSQL cannot store: 400; a pooled
database connection that died under the request: 503) is a complete answer: uvicorn must not
log "Exception in ASGI application" for it, and the next request on the same keep-alive
connection must be answered. Served by a real uvicorn and spoken to over one httpx connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn

from admin_kit import API, problem
from harness import Backends
from issuance_kit import enroll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@contextlib.asynccontextmanager
async def _served(app: object) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", log_config=None)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


class _Connections:
    """Counts the TCP connections a client opens (httpcore's trace events)."""

    def __init__(self) -> None:
        self.opened = 0

    async def trace(self, event: str, info: dict[str, object]) -> None:
        if event == "connection.connect_tcp.complete":
            self.opened += 1

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions["trace"] = self.trace


@pytest_asyncio.fixture(loop_scope="session")
async def one_connection(api_app: object, backends: Backends) -> AsyncIterator[httpx.AsyncClient]:
    """A keep-alive client of a real uvicorn serving the api; `client.connections.opened`."""
    async with _served(api_app) as url:
        connections = _Connections()
        async with httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {backends.admin_token}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            event_hooks={"request": [connections.on_request]},
        ) as client:
            client.connections = connections  # type: ignore[attr-defined]
            yield client


async def _assert_connection_kept(
    client: httpx.AsyncClient, refused: httpx.Response, caplog: pytest.LogCaptureFixture
) -> None:
    assert refused.headers.get("connection", "").lower() != "close", refused.headers
    after = await client.get(f"{API}/me")
    assert after.status_code == 200, after.text
    assert client.connections.opened == 1, "the refusal closed the connection"  # type: ignore[attr-defined]
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if "Exception in ASGI application" in m], logged


async def test_nul_text_is_a_400_that_keeps_the_connection(
    one_connection: httpx.AsyncClient, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A metadata value is stored as JSONB, which cannot hold NUL: PostgreSQL refuses it."""
    caplog.set_level(logging.INFO)
    before = await one_connection.get(f"{API}/me")
    assert before.status_code == 200
    enrollment = await enroll(admin)
    refused = await one_connection.post(
        enrollment.requests,
        json=enrollment.body(common_name="nul.example.com", metadata={"team": "a\u0000b"}),
    )
    problem(refused, 400)
    assert refused.json()["type"].endswith("invalid-text")
    await _assert_connection_kept(one_connection, refused, caplog)


async def test_a_lost_database_connection_is_a_503_that_keeps_the_connection(
    one_connection: httpx.AsyncClient,
    backends: Backends,
    caplog: pytest.LogCaptureFixture,
    api_app: Any,
    issuer: Any,
) -> None:
    """Terminating every server process of the api's database is what a restart looks like to
    its pools: the first request to use a dead pooled connection is answered 503, retryable."""
    caplog.set_level(logging.INFO)
    assert (await one_connection.get(f"{API}/applications")).status_code == 200
    refused: httpx.Response | None = None
    for _ in range(5):
        await _terminate_backends(backends)
        response = await one_connection.get(f"{API}/applications")
        if response.status_code == 503:
            refused = response
            break
        assert response.status_code == 200, response.text
    assert refused is not None, "no request met a terminated connection"
    problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    await _assert_connection_kept(one_connection, refused, caplog)
    # The session's other users of the database (its issuer, the api's ORM) are left with dead
    # pooled connections too; each would fail its next use once, retryably. Later tests are not
    # about that: give them fresh pools.
    for owner in (api_app.state.certforge, issuer):
        await owner.engine.dispose()
    await api_app.state.certforge.db.expire_connections()
    await (await issuer.database.get()).expire_connections()


async def _terminate_backends(backends: Backends) -> None:
    conn = await asyncpg.connect(backends.server_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            backends.database_name,
        )
    finally:
        await conn.close()
