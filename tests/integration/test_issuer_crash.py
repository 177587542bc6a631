"""Killing the issuer in the middle of 500 requests loses none and duplicates none.

The api and the issuer run as real processes on a database and NATS namespace of their own (so
the test session's in-process issuer cannot take the work). The issuer is SIGKILLed while
requests stream in and started again; unacknowledged commands come back after the ack wait.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import async_url
from certforge.devstack import create_database, drop_database, free_port
from harness import Backends, delete_namespace

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

BIN = Path(sys.executable).parent
TOTAL = 500


class Stack:
    def __init__(self, backends: Backends, database_url: str, namespace: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **backends.env(),
            "CERTFORGE_DATABASE_URL": database_url,
            "CERTFORGE_NATS__NAMESPACE": namespace,
            "CERTFORGE_API_PORT": str(self.port),
            "CERTFORGE_CONSUMER__ACK_WAIT_SECONDS": "3",
            "CERTFORGE_LOG_LEVEL": "WARNING",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = backends.state_dir

    def start(self, service: str) -> None:
        log = open(self.logs / f"crash-{service}.log", "ab")  # noqa: SIM115
        self.processes[service] = subprocess.Popen(
            [str(BIN / f"certforge-{service}")], env=self.env, stdout=log, stderr=log
        )

    def kill(self, service: str) -> None:
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def stack(backends: Backends) -> Iterator[Stack]:
    import asyncio as aio

    from certforge.common.db.migrations import upgrade

    name = f"cf_crash_{secrets.token_hex(4)}"
    database_url = aio.run(create_database(backends.server_url, name))
    upgrade(database_url)
    stack = Stack(backends, database_url, f"c{secrets.token_hex(4)}")
    stack.start("issuer")
    stack.start("api")
    try:
        yield stack
    finally:
        stack.stop_all()
        aio.run(drop_database(backends.server_url, name))
        aio.run(delete_namespace(backends.nats_url, stack.env["CERTFORGE_NATS__NAMESPACE"]))


@pytest_asyncio.fixture(loop_scope="session")
async def api(stack: Stack, backends: Backends) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{stack.port}"
    headers = {"Authorization": f"Bearer {backends.admin_token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "api did not start"
            await asyncio.sleep(0.2)
        yield client


async def _setup(api: httpx.AsyncClient) -> None:
    root = (
        await api.post(
            "/api/v1/cas",
            json={
                "name": "crash-root",
                "type": "root",
                "subject": {"common_name": "Crash Root"},
                "key_algorithm": "EC_P256",
                "validity": "5y",
            },
        )
    ).json()
    inter = (
        await api.post(
            "/api/v1/cas",
            json={
                "name": "crash-issuing",
                "type": "intermediate",
                "parent_ca_id": root["id"],
                "subject": {"common_name": "Crash Issuing"},
                "key_algorithm": "EC_P256",
                "validity": "2y",
                "max_path_length": 0,
            },
        )
    ).json()
    policy = (
        await api.post(
            "/api/v1/policies",
            json={"name": "crash", "sans": {"dns": {"allowed": ["**.example.com"]}}},
        )
    ).json()
    created = await api.post(
        "/api/v1/profiles", json={"slug": "crash", "ca_id": inter["id"], "policy_id": policy["id"]}
    )
    assert created.status_code == 201, created.text
    await api.post("/api/v1/applications", json={"slug": "crash", "name": "Crash"})
    await api.put("/api/v1/applications/crash/profiles/crash")
    enrolled = await api.put(
        "/api/v1/applications/crash/profiles/crash/enrollment/api",
        json={"enabled": True, "auto_renew": False, "renew_before_days": 5},
    )
    assert enrolled.status_code == 200, enrolled.text


async def _count(database_url: str) -> dict[str, int]:
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT status, count(*) FROM certificate_requests GROUP BY status")
                )
            ).all()
            counts: dict[str, int] = {str(status): int(n) for status, n in rows}
            counts["certificates"] = (
                await conn.execute(text("SELECT count(*) FROM certificates"))
            ).scalar_one()
            counts["distinct_requests"] = (
                await conn.execute(text("SELECT count(DISTINCT request_id) FROM certificates"))
            ).scalar_one()
            return counts
    finally:
        await engine.dispose()


async def test_killing_the_issuer_loses_and_duplicates_nothing(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    await _setup(api)
    semaphore = asyncio.Semaphore(16)

    async def submit(i: int) -> None:
        async with semaphore:
            response = await api.post(
                "/api/v1/applications/crash/certificate-requests",
                json={
                    "profile": "crash",
                    "common_name": f"host{i}.example.com",
                    "sans": [{"type": "dns", "value": f"host{i}.example.com"}],
                },
            )
            assert response.status_code == 202, response.text

    first = asyncio.gather(*(submit(i) for i in range(TOTAL // 2)))
    await asyncio.sleep(0.5)
    stack.kill("issuer")  # mid-stream, with batches in flight
    await first
    stack.start("issuer")
    await asyncio.sleep(0.5)
    stack.kill("issuer")  # once more, right after it came back
    stack.start("issuer")
    await asyncio.gather(*(submit(i) for i in range(TOTAL // 2, TOTAL)))

    database_url = stack.env["CERTFORGE_DATABASE_URL"]
    deadline = time.monotonic() + 120
    while (counts := await _count(database_url)).get("pending", 0) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(1)
    assert counts.get("pending", 0) == 0, counts
    assert counts == {"issued": TOTAL, "certificates": TOTAL, "distinct_requests": TOTAL}, counts

    # Each certificate was announced; re-publishes after the kill were de-duplicated. (The
    # stream also holds the set-up's configuration.changed events: only certificates count.)
    subjects = Subjects(stack.env["CERTFORGE_NATS__NAMESPACE"])
    issued = subjects.event("crash", "certificate.issued")
    client = await nats.connect(stack.env["CERTFORGE_NATS_URL"])

    async def announced() -> int:
        info = await client.jetstream().stream_info(subjects.events_stream, subjects_filter=issued)
        return (info.state.subjects or {}).get(issued, 0)

    try:
        deadline = time.monotonic() + 30
        while await announced() < TOTAL and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        assert await announced() == TOTAL
    finally:
        await client.close()
