"""`certforge-dev run` (what `make run` calls) as end-to-end tests start it: a real process on a
state directory of its own, with the embedded NATS and PostgreSQL it starts itself, read back
through its banner. Shared by test_make_run.py and test_acme_certbot.py (fixtures in
conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from certforge.devstack.process import pid_alive, read_pid_file

DEV = Path(sys.executable).parent / "certforge-dev"
START_TIMEOUT = 120.0  # five processes import in parallel; slow on a busy 2-core CI machine
STOP_TIMEOUT = 30.0
BANNER = "Certforge is running"


@dataclass
class DevRun:
    """One `certforge-dev run` process and what its banner told us."""

    popen: subprocess.Popen[bytes]
    log: Path
    api: str
    https: str
    nats_port: int = 0
    postgres_port: int = 0
    nats_url: str = ""
    acme_directory: str = ""
    ca_file: Path = field(default_factory=Path)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> float:
        """Until the banner is printed and /readyz answers 200; the seconds it took."""
        started = time.monotonic()
        while True:
            if self.popen.poll() is not None:
                pytest.fail(
                    f"certforge-dev exited with {self.popen.returncode} during start:\n"
                    f"{self.output()[-5000:]}"
                )
            text = self.output()
            if BANNER in text and healthy(f"{self.api}/readyz"):
                break
            if time.monotonic() - started > START_TIMEOUT:
                pytest.fail(f"not ready after {START_TIMEOUT:.0f} s:\n{text[-5000:]}")
            time.sleep(0.2)
        nats = re.search(r"NATS\s+(nats://127\.0\.0\.1:(\d+))", text)
        postgres = re.search(r"PostgreSQL\s+postgresql://[^@\s]+@127\.0\.0\.1:(\d+)/", text)
        directory = re.search(r"ACME directory\s+(\S+)", text)
        ca_file = re.search(r"ACME CA file\s+(\S+)", text)
        assert nats, text[-3000:]
        assert postgres, text[-3000:]
        assert directory, text[-3000:]
        assert ca_file, text[-3000:]
        self.nats_url, self.nats_port = nats[1], int(nats[2])
        self.postgres_port = int(postgres[1])
        self.acme_directory, self.ca_file = directory[1], Path(ca_file[1])
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

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) if still running: the fixtures' clean-up."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def healthy(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        return httpx.get(url, timeout=1.0, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def clean_env() -> dict[str, str]:
    """Our environment without any CERTFORGE_ variable: the run must start its own servers."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")}


def new_state_dir() -> Path:
    """Short and under /tmp: the PostgreSQL socket path limit, and (as root) a directory the
    PostgreSQL system user can traverse."""
    return Path(tempfile.mkdtemp(prefix="cf-e2e-", dir="/tmp"))


def remove_state_dir(path: Path) -> None:
    stop_leftover_postgres(path)
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(Path(f"{path}.logs"), ignore_errors=True)


def stop_leftover_postgres(state: Path) -> None:
    """Only if the test failed half-way: pg_ctl daemonizes PostgreSQL, so it would outlive a
    killed certforge-dev. Its pid comes from its own pid file in our state directory."""
    pid = read_pid_file(state / "pgdata" / "postmaster.pid")
    if pid is not None and pid_alive(pid):
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


class DevRuns:
    """Starts `certforge-dev run` on one state directory, as often as a test needs; `stop_all`
    stops whatever still runs."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.runs: list[DevRun] = []
        self.log_dir = Path(f"{state_dir}.logs")
        self.log_dir.mkdir(exist_ok=True)

    def start(self, api_port: int, tls_port: int, env: dict[str, str] | None = None) -> DevRun:
        log = self.log_dir / f"run-{len(self.runs) + 1}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(DEV), "run"],
                env={
                    **clean_env(),
                    "PYTHONUNBUFFERED": "1",
                    "CERTFORGE_STATE_DIR": str(self.state_dir),
                    "CERTFORGE_API_PORT": str(api_port),
                    "CERTFORGE_API_TLS_PORT": str(tls_port),
                    **(env or {}),
                },
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        run = DevRun(popen, log, f"http://127.0.0.1:{api_port}", f"https://127.0.0.1:{tls_port}")
        self.runs.append(run)
        return run

    def stop_all(self) -> None:
        for run in self.runs:
            run.stop()
