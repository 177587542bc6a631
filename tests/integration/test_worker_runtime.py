"""The worker runtime as operators meet it: real service processes, started from their console
scripts like Kubernetes starts them, probed on their health port, stopped with SIGTERM.

Also: a service without its keys refuses to start with one clear line (never a traceback, never
a secret), and a SIGTERM still publishes the outbox rows committed before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
import pytest
import pytest_asyncio
from sqlmodel import select

from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import create_engine, session_factory
from certforge.common.db.migrations import upgrade
from certforge.common.db.tables import OutboxMessage
from certforge.common.messaging import delete_streams
from certforge.common.settings import NatsSettings
from certforge.devstack import create_database, drop_database, free_port
from harness import Backends

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(120),
]

BIN = Path(sys.executable).parent
START_TIMEOUT = 45.0
STOP_TIMEOUT = 10.0


def service_env(backends: Backends, **extra: str) -> dict[str, str]:
    """The process environment without any CERTFORGE_* of ours, plus the test backends."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")}
    return {**base, **backends.env(**extra), "PYTHONUNBUFFERED": "1"}


@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    health_port: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, path: str, timeout: float = START_TIMEOUT) -> float:  # noqa: ASYNC109
        """Poll `http://127.0.0.1:<health port><path>` until 200; the seconds it took."""
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.health_port}{path}"
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if self.popen.poll() is not None:
                    pytest.fail(
                        f"{self.name} exited with {self.popen.returncode} before {path} answered "
                        f"200:\n{self.output()[-3000:]}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(url)).status_code == 200:
                        return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    pytest.fail(f"{url} not 200 after {timeout:.0f} s:\n{self.output()[-3000:]}")
                await asyncio.sleep(0.1)

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> tuple[int, float]:  # noqa: ASYNC109
        """SIGTERM; the exit code and how long the graceful stop took."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        code = await self.exit_code(timeout)
        if code is None:
            pytest.fail(
                f"{self.name} still running {timeout:.0f} s after SIGTERM:\n{self.output()[-3000:]}"
            )
        return code, time.monotonic() - started

    async def exit_code(self, timeout: float) -> int | None:  # noqa: ASYNC109
        """Wait (without blocking the loop) for the process to exit; None if it did not."""
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            return None


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Any]:
    """`start_service(name, env)`: a `certforge-<name>` process, killed at the end if alive."""
    started: list[Service] = []

    def start(name: str, env: dict[str, str]) -> Service:
        log = tmp_path / f"{name}-{len(started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(BIN / f"certforge-{name}")],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        port = env.get("CERTFORGE_HEALTH_PORT", "")
        service = Service(name, popen, log, int(port) if port.isdigit() else 0)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.popen.poll() is None:
            service.popen.kill()
            service.popen.wait(5)


# --- probes and graceful stop --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["renewer", "issuer", "syncer"])
async def test_worker_probes_and_sigterm(name: str, backends: Backends, start_service: Any) -> None:
    port = free_port()
    service: Service = start_service(name, service_env(backends, CERTFORGE_HEALTH_PORT=str(port)))
    alive = await service.wait_for("/livez")
    ready = await service.wait_for("/readyz")
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"http://127.0.0.1:{port}/readyz")).json()
        legacy = await client.get(f"http://127.0.0.1:{port}/healthz")
        missing = await client.get(f"http://127.0.0.1:{port}/nope")
    assert body == {"status": "ok", "database": "ok", "nats": "ok", "streams": "ok"}
    assert legacy.json() == {"status": "ok"}, "the deprecated alias keeps its meaning: alive"
    assert missing.status_code == 404

    code, took = await service.terminate()
    output = service.output()
    assert code == 0, output[-3000:]
    assert f"{name} stopped" in output
    assert "Traceback" not in output, output[-3000:]
    print(f"{name}: /livez after {alive:.1f} s, /readyz +{ready:.1f} s, stop {took:.1f} s")


# --- a clear refusal without keys ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unset", "empty"),
    [
        ("issuer", "CERTFORGE_CA_KEKS", False),
        ("issuer", "CERTFORGE_CA_KEKS", True),
        ("api", "CERTFORGE_LEAF_KEKS", False),
    ],
)
async def test_service_without_keys_refuses_to_start(
    name: str, unset: str, empty: bool, backends: Backends, start_service: Any
) -> None:
    env = service_env(
        backends, CERTFORGE_ENVIRONMENT="production", CERTFORGE_HEALTH_PORT=str(free_port())
    )
    if empty:
        env[unset] = ""
    else:
        del env[unset]
    service: Service = start_service(name, env)
    assert await service.exit_code(20) == 2, service.output()
    output = service.output()
    lines = output.strip().splitlines()
    assert lines == [
        f"certforge-{name}: configuration error: {unset} is required: key-encryption keys "
        "`kid:base64(32 bytes)[,kid:…]` (make run generates them in its state directory)"
    ]
    assert "Traceback" not in output
    for value in (backends.ca_keks, backends.leaf_keks, backends.database_url):
        if value:
            assert value not in output, "a configuration error never prints values"


async def test_invalid_setting_names_its_variable(backends: Backends, start_service: Any) -> None:
    env = service_env(backends, CERTFORGE_HEALTH_PORT="not-a-port")
    service: Service = start_service("renewer", env)
    assert await service.exit_code(20) == 2, service.output()
    output = service.output()
    assert output.startswith("certforge-renewer: configuration error: CERTFORGE_HEALTH_PORT: ")
    assert "not-a-port" not in output
    assert "Traceback" not in output


# --- SIGTERM publishes what was committed --------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def private_backends(backends: Backends) -> AsyncIterator[Backends]:
    """A database and namespace of this test alone: no other relay can publish its rows."""
    suffix = secrets.token_hex(4)
    name = f"{backends.database_name}_w{suffix}"
    url = await create_database(backends.server_url, name)
    await asyncio.to_thread(upgrade, url)
    private = Backends(
        server_url=backends.server_url,
        database_url=url,
        database_name=name,
        nats_url=backends.nats_url,
        namespace=f"w{suffix}",
        ca_keks=backends.ca_keks,
        leaf_keks=backends.leaf_keks,
        admin_token=backends.admin_token,
        state_dir=backends.state_dir,
    )
    try:
        yield private
    finally:
        await drop_database(backends.server_url, name)
        client = await nats.connect(backends.nats_url)
        try:
            # every stream of the namespace (the sync stream too)
            await delete_streams(client.jetstream(), Subjects(private.namespace), NatsSettings())
        finally:
            await client.close()


async def test_sigterm_makes_a_last_outbox_pass(
    private_backends: Backends, start_service: Any
) -> None:
    """A row committed while the relay sleeps (poll period of an hour) goes out on SIGTERM:
    the worker makes its last outbox pass before it closes the NATS connection."""
    env = service_env(
        private_backends,
        CERTFORGE_HEALTH_PORT=str(free_port()),
        CERTFORGE_OUTBOX__POLL_INTERVAL_SECONDS="3600",
    )
    service: Service = start_service("renewer", env)
    await service.wait_for("/readyz")
    subjects = Subjects(private_backends.namespace)
    subject = subjects.event("shop", "certificate.expiring")
    row_id = uuid4()
    engine = create_engine(private_backends.database_url, pool_size=1)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            session.add(OutboxMessage(id=row_id, subject=subject, payload=b'{"probe": 1}'))
        await asyncio.sleep(0.5)
        async with sessions() as session:
            row = (await session.exec(select(OutboxMessage))).one()
        assert row.sent_at is None, "the relay sleeps: nothing publishes the row before SIGTERM"

        code, _ = await service.terminate()
        assert code == 0, service.output()[-3000:]
        async with sessions() as session:
            row = (await session.exec(select(OutboxMessage))).one()
        assert row.sent_at is not None, "SIGTERM published the committed row"
    finally:
        await engine.dispose()

    client = await nats.connect(private_backends.nats_url)
    try:
        js = client.jetstream()
        info = await js.stream_info(subjects.events_stream)
        assert info.state.messages == 1
        msg = await js.get_msg(subjects.events_stream, info.state.last_seq)
        assert msg.subject == subject
        assert msg.headers is not None
        assert msg.headers["Nats-Msg-Id"] == str(row_id)
    finally:
        await client.close()
