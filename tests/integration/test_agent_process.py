"""The agent as it runs on a server: the real `certforge agent run` process, against the
session's api behind a real uvicorn on a port that is stopped and started again.

It follows a certificate given by id (already renewed once: it takes the newest of the
lineage), logs JSON lines on stderr, keeps the files untouched while nothing listens on the
port, installs the renewal that happened meanwhile once the api is back, reports through
`certforge agent status`, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from cryptography import x509

from admin_kit import API, create_identity, put_member
from issuance_kit import WAIT, enroll, issue
from lifecycle_kit import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CERTFORGE = Path(sys.executable).parent / "certforge"


class Api:
    """The session's api served by uvicorn on one fixed port, stoppable and restartable."""

    def __init__(self, app: Any) -> None:
        self.app = app
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), self.task
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        assert self.server is not None
        assert self.task is not None
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)
        self.server = None


@pytest_asyncio.fixture(loop_scope="session")
async def api(api_app: Any) -> AsyncIterator[Api]:
    server = Api(api_app)
    await server.start()
    yield server
    if server.server is not None:
        await server.stop()


async def certforge(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(CERTFORGE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def serial_of(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "x")


async def test_agent_process_survives_the_api_stopping(
    admin: httpx.AsyncClient, api: Api, tmp_path: Path
) -> None:
    e = await enroll(admin)
    identity = await create_identity(admin)
    await put_member(admin, e.app, identity["id"], "operator")
    first = (await issue(admin, e, common_name="proc.example.com"))["certificate"]["id"]

    async def renew(certificate_id: str) -> str:
        url = f"{API}/applications/{e.app}/certificates/{certificate_id}/renew"
        r = await admin.post(url, headers=WAIT)
        assert r.status_code == 201, r.text
        new_id: str = r.json()["certificate"]["id"]
        return new_id

    second = await renew(first)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "token").write_text(identity["token"])
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"""\
server:
  url: {api.url}
  token_file: {tmp_path}/token
state_file: {tmp_path}/state.json
log_format: json
watch_wait: 5
backoff_initial: 0.2
backoff_max: 1
certificates:
  - name: proc
    app: {e.app}
    certificate_id: {first}
    files:
      fullchain: {{path: {out}/fullchain.pem}}
      key: {{path: {out}/key.pem}}
    reload:
      command: [sh, -c, "echo reloaded >> {tmp_path}/reloads"]
"""
    )
    log = tmp_path / "agent.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            str(CERTFORGE),
            "agent",
            "run",
            "--config",
            str(config),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:

        def state() -> dict[str, Any]:
            path = tmp_path / "state.json"
            document: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
            entry: dict[str, Any] = document.get("certificates", {}).get("proc", {})
            return entry

        async def holds(certificate_id: str) -> bool:
            reloads = tmp_path / "reloads"
            return state().get("certificate_id") == certificate_id and reloads.exists()

        await eventually(lambda: holds(second), 20, "the newest of the lineage installed")
        assert serial_of(out / "fullchain.pem") == state()["serial_number"]
        status = await certforge("agent", "status", "--config", str(config), "--json")
        assert status.returncode == 0, status
        assert json.loads(status.stdout)["healthy"] is True

        # Nothing listens on the port for a while; the certificate is renewed meanwhile.
        await api.stop()
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        third = await renew(second)

        async def failing() -> bool:
            return state().get("status") == "error" and state().get("failures", 0) >= 2

        await eventually(failing, 20, "the agent noticing the api is gone")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        status = await certforge("agent", "status", "--config", str(config))
        assert status.returncode == 1, status
        assert "cannot reach" in status.stdout, status.stdout

        await api.start()
        await eventually(lambda: holds(third), 20, "recovery once the api is back")

        async def reloaded_twice() -> bool:
            return len((tmp_path / "reloads").read_text().splitlines()) == 2

        await eventually(reloaded_twice, 10, "one reload per installed certificate")
        assert serial_of(out / "fullchain.pem") == state()["serial_number"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    output = log.read_text()
    assert code == 0, output
    lines = [json.loads(line) for line in output.splitlines()]
    messages = [line["message"] for line in lines]
    assert any("installed certificate " + third in m for m in messages), messages
    assert any(m.endswith("recovered") for m in messages), messages
    assert all(identity["token"] not in line for line in output.splitlines())
    assert {line["level"] for line in lines} <= {"info", "warning", "error"}
