"""`make run`'s engine, `certforge-dev run`, as a developer uses it on a machine with nothing else.

It must start its own NATS and PostgreSQL (no CERTFORGE_NATS_URL / CERTFORGE_DATABASE_URL in its
environment), migrate, generate keys and a bootstrap token, start the four services, print a
banner; the README's admin flow works against it with plain HTTP; Ctrl-C stops everything,
embedded servers included; a second run on the same state directory has the same data, keys
and token.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from certforge.devstack.ports import free_port, tcp_reachable
from certforge.devstack.process import pid_alive, read_pid_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DEV = Path(sys.executable).parent / "certforge-dev"
START_TIMEOUT = 90.0  # four services import in parallel; slow on a busy 2-core CI machine
STOP_TIMEOUT = 30.0
BANNER = "Certforge is running"


@dataclass
class DevRun:
    """One `certforge-dev run` process and what its banner told us."""

    popen: subprocess.Popen[bytes]
    log: Path
    api: str
    nats_port: int = 0
    postgres_port: int = 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> float:
        """Until the banner is printed and /healthz answers 200; the seconds it took."""
        started = time.monotonic()
        while True:
            if self.popen.poll() is not None:
                pytest.fail(
                    f"certforge-dev exited with {self.popen.returncode} during start:\n"
                    f"{self.output()[-5000:]}"
                )
            text = self.output()
            if BANNER in text and _healthy(f"{self.api}/healthz"):
                break
            if time.monotonic() - started > START_TIMEOUT:
                pytest.fail(f"not ready after {START_TIMEOUT:.0f} s:\n{text[-5000:]}")
            time.sleep(0.2)
        nats = re.search(r"NATS\s+nats://127\.0\.0\.1:(\d+)", text)
        postgres = re.search(r"PostgreSQL\s+postgresql://[^@\s]+@127\.0\.0\.1:(\d+)/", text)
        assert nats, text[-3000:]
        assert postgres, text[-3000:]
        self.nats_port, self.postgres_port = int(nats[1]), int(postgres[1])
        return time.monotonic() - started

    def interrupt(self) -> tuple[int, float]:
        """Ctrl-C; the exit code and how long the stop took."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGINT)
        try:
            code = self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"running {STOP_TIMEOUT:.0f} s after SIGINT:\n{self.output()[-5000:]}")
        return code, time.monotonic() - started


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """Short and under /tmp: the PostgreSQL socket path limit, and (as root) a directory the
    PostgreSQL system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="cf-e2e-", dir="/tmp"))
    yield path
    _stop_leftover_postgres(path)
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(Path(f"{path}.logs"), ignore_errors=True)


def _stop_leftover_postgres(state: Path) -> None:
    """Only if the test failed half-way: pg_ctl daemonizes PostgreSQL, so it would outlive a
    killed certforge-dev. Its pid comes from its own pid file in our state directory."""
    pid = read_pid_file(state / "pgdata" / "postmaster.pid")
    if pid is not None and pid_alive(pid):
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture
def dev_run(state_dir: Path) -> Iterator[Any]:
    """`dev_run(api_port)` starts `certforge-dev run` on the state directory; every run still
    alive at the end is stopped (SIGTERM, then SIGKILL)."""
    runs: list[DevRun] = []
    log_dir = Path(f"{state_dir}.logs")
    log_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")}
    env |= {"PYTHONUNBUFFERED": "1", "CERTFORGE_STATE_DIR": str(state_dir)}

    def start(api_port: int) -> DevRun:
        log = log_dir / f"run-{len(runs) + 1}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(DEV), "run"],
                env={**env, "CERTFORGE_API_PORT": str(api_port)},
                cwd=state_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        run = DevRun(popen, log, f"http://127.0.0.1:{api_port}")
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.popen.poll() is None:
            run.popen.terminate()
            try:
                run.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                run.popen.kill()
                run.popen.wait(5)


def _demo(state_dir: Path, api_port: int) -> str:
    """`make demo`'s command against a running stack; its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")}
    done = subprocess.run(
        [str(DEV), "demo"],
        env={**env, "CERTFORGE_STATE_DIR": str(state_dir), "CERTFORGE_API_PORT": str(api_port)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _admin_flow(client: httpx.Client) -> dict[str, str]:
    """The README's curl examples (the issue's Shapes section), in order; the ids created."""
    root = _created(
        client.post(
            "/api/v1/cas",
            json={
                "name": "root",
                "type": "root",
                "subject": {"common_name": "Example Root CA", "organization": "Example"},
                "key_algorithm": "EC_P256",
                "validity": "10y",
                "max_path_length": 1,
            },
        )
    )
    assert root["type"] == "root"
    assert root["status"] == "active"
    assert root["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    issuing = _created(
        client.post(
            "/api/v1/cas",
            json={
                "name": "issuing",
                "type": "intermediate",
                "parent_ca_id": root["id"],
                "subject": {"common_name": "Example Issuing CA", "organization": "Example"},
                "key_algorithm": "EC_P256",
                "validity": "5y",
                "max_path_length": 0,
            },
        )
    )
    assert issuing["type"] == "intermediate"
    policy = _created(
        client.post(
            "/api/v1/policies",
            json={
                "name": "web",
                "subject": {"common_name": {"allowed": ["*.example.com", "example.com"]}},
                "sans": {
                    "dns": {"allowed": ["*.example.com", "example.com"]},
                    "ip": {"allowed": ["10.0.0.0/8"]},
                },
                "key_algorithms": ["EC_P256", "EC_P384", "RSA_2048", "RSA_3072", "ED25519"],
                "key_usages": {"allowed": ["digital_signature", "key_encipherment"]},
                "extended_key_usages": {"allowed": ["server_auth", "client_auth"]},
                "max_validity": "90d",
            },
        )
    )
    profile = _created(
        client.post(
            "/api/v1/profiles",
            json={
                "slug": "web-server",
                "ca_id": issuing["id"],
                "policy_id": policy["id"],
                "defaults": {
                    "ttl": "30d",
                    "key_algorithm": "EC_P256",
                    "key_usages": ["digital_signature"],
                    "extended_key_usages": ["server_auth"],
                },
            },
        )
    )
    shop = {"slug": "shop", "name": "Shop"}
    application = _created(client.post("/api/v1/applications", json=shop))
    bot = _created(client.post("/api/v1/identities", json={"name": "ci-bot"}))
    assert bot["token"]
    member = client.put(f"/api/v1/applications/shop/members/{bot['id']}", json={"role": "operator"})
    assert member.status_code in (200, 201), member.text
    enrollment = client.put(
        "/api/v1/applications/shop/profiles/web-server",
        json={"api": {"enabled": True, "auto_renew": True, "renew_before_days": 10}},
    )
    assert enrollment.status_code == 201, enrollment.text
    assert enrollment.json()["api"] == {
        "enabled": True,
        "auto_renew": True,
        "renew_before_days": 10,
    }
    return {
        "root": root["id"],
        "issuing": issuing["id"],
        "policy": policy["id"],
        "profile": profile["id"],
        "application": application["id"],
    }


def test_make_run_serves_stops_and_keeps_its_data(state_dir: Path, dev_run: Any) -> None:
    api_port = free_port()
    timings: dict[str, float] = {}

    # --- first run: a fresh state directory ---
    first: DevRun = dev_run(api_port)
    timings["first start"] = first.wait_ready()
    for port in (first.nats_port, first.postgres_port):
        assert port not in (4222, 5432), "embedded servers never take the system ports"
    secrets_dir = state_dir / "secrets"
    token = (secrets_dir / "bootstrap_token").read_text().strip()
    assert token.startswith("cf_")
    assert token in first.output(), "the banner prints the token"
    for name in ("bootstrap_token", "ca_keks", "leaf_keks"):
        assert stat.S_IMODE((secrets_dir / name).stat().st_mode) == 0o600, name
    ca_keks = (secrets_dir / "ca_keks").read_text()

    # The banner's next step: `make demo`, a first certificate in one command, twice (idempotent).
    assert "make demo" in first.output()
    started = time.monotonic()
    demo = _demo(state_dir, api_port)
    timings["demo: first certificate"] = time.monotonic() - started
    assert "Issued hello.localhost" in demo, demo
    again = _demo(state_dir, api_port)
    assert "created" not in again, again
    assert "Issued hello.localhost" in again, again
    curl = demo[demo.index("curl ") :].replace("\\\n", " ")
    issued = subprocess.run(
        ["bash", "-c", curl], cwd=state_dir.parent, capture_output=True, text=True, timeout=60
    )
    assert '"status":"issued"' in issued.stdout.replace(" ", ""), issued

    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=first.api, headers=headers, timeout=30.0) as client:
        ids = _admin_flow(client)
        assert client.get("/api/v1/cas").status_code == 200
        unauthenticated = httpx.get(f"{first.api}/api/v1/cas", timeout=5.0)
        assert unauthenticated.status_code == 401
    timings["admin flow"] = time.monotonic() - started

    code, timings["first stop"] = first.interrupt()
    assert code == 0, first.output()[-5000:]
    for port in (api_port, first.nats_port, first.postgres_port):
        assert not tcp_reachable("127.0.0.1", port), f"port {port} still open after Ctrl-C"
    assert not (state_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL was stopped"
    nats_pid = read_pid_file(state_dir / "nats.pid")
    assert nats_pid is None or not pid_alive(nats_pid), "nats-server was stopped"

    # --- second run: same state directory, same data, keys and token ---
    second: DevRun = dev_run(api_port)
    timings["second start"] = second.wait_ready()
    assert (secrets_dir / "bootstrap_token").read_text().strip() == token
    assert (secrets_dir / "ca_keks").read_text() == ca_keks
    with httpx.Client(base_url=second.api, headers=headers, timeout=30.0) as client:
        listed = client.get("/api/v1/cas")
        assert listed.status_code == 200, listed.text
        body = listed.json()
        items = body["items"] if isinstance(body, dict) else body
        assert {ids["root"], ids["issuing"]} <= {ca["id"] for ca in items}
        assert client.get("/api/v1/applications/shop").status_code == 200
        # The root's key, encrypted under the first run's CA KEK, still signs.
        again = client.post(
            "/api/v1/cas",
            json={
                "name": "issuing-2",
                "type": "intermediate",
                "parent_ca_id": ids["root"],
                "subject": {"common_name": "Example Issuing CA 2"},
                "key_algorithm": "EC_P256",
                "validity": "1y",
                "max_path_length": 0,
            },
        )
        assert again.status_code == 201, again.text
    code, timings["second stop"] = second.interrupt()
    assert code == 0, second.output()[-5000:]
    for port in (api_port, second.nats_port, second.postgres_port):
        assert not tcp_reachable("127.0.0.1", port), f"port {port} still open after Ctrl-C"
    print(" · ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))


def test_make_run_reports_an_unusable_api_port(state_dir: Path, dev_run: Any) -> None:
    """A taken API port is a one-line error and a quick exit, before any server is started."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run: DevRun = dev_run(port)
        try:
            code = run.popen.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"did not give up on a taken port:\n{run.output()[-3000:]}")
    output = run.output()
    assert code == 1, output
    assert f"something already listens on 127.0.0.1:{port}" in output
    assert "Traceback" not in output
    assert not (state_dir / "pgdata").exists(), "checked before starting any server"
    assert not (state_dir / "nats").exists(), "checked before starting any server"
