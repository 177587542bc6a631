"""The system under fault: its own PostgreSQL and NATS (so they can be paused, killed and
restarted without touching anything else on the machine), a moto_server for ACM, and the api,
issuer, syncer and renewer as separate processes, each of which can be SIGKILLed and started
again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from certforge.common.crypto.envelope import KeyRing
from certforge.devstack import create_database, free_port, start_nats, start_postgres
from certforge.devstack.postgres import ManagedPostgres
from certforge.devstack.process import ManagedProcess

BIN = Path(sys.executable).parent
SERVICES = ("api", "issuer", "syncer", "renewer")


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (PostgreSQL's backends are children of the postmaster)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class Engines:
    """PostgreSQL and NATS of our own, shared by every run of the module (a fresh database and
    namespace per run)."""

    state: Path
    pg: ManagedPostgres
    nats: ManagedProcess
    moto_url: str
    moto: subprocess.Popen[bytes]

    @classmethod
    def start(cls, state: Path) -> Engines:
        pg = start_postgres(state / "pg")
        nats = start_nats(state / "nats")
        port = free_port()
        log = (state / "moto.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        moto = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        return cls(state, pg, nats, f"http://127.0.0.1:{port}", moto)

    @property
    def postmaster(self) -> int:
        return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])

    def pause_postgres(self) -> list[int]:
        pids = [self.postmaster, *_children(self.postmaster)]
        _signal_all(pids, signal.SIGSTOP)
        return pids

    def kill_and_restart_postgres(self) -> None:
        """A crash: the postmaster and its backends SIGKILLed, then crash recovery on start."""
        pids = [self.postmaster, *_children(self.postmaster)]
        _signal_all(pids, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pg = start_postgres(self.state / "pg", port=self.pg.port)

    def pause_nats(self) -> list[int]:
        _signal_all([self.nats.pid], signal.SIGSTOP)
        return [self.nats.pid]

    def kill_and_restart_nats(self) -> None:
        """SIGKILL: JetStream recovers its file store on start, as after a node crash."""
        os.kill(self.nats.pid, signal.SIGKILL)
        self.nats.wait(10)
        self.nats = start_nats(self.state / "nats", port=self.nats.port)

    def stop(self) -> None:
        self.moto.terminate()
        self.nats.stop()
        self.pg.stop()
        self.moto.wait(10)


def resume(pids: list[int]) -> None:
    _signal_all(pids, signal.SIGCONT)


@dataclass
class Services:
    """One run's services: a database and namespace of their own on the shared engines."""

    engines: Engines
    database_url: str
    namespace: str
    admin_token: str
    logs: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def create(cls, engines: Engines, run: str) -> Services:
        from certforge.common.db.migrations import upgrade

        name = f"cf_fault_{run}_{secrets.token_hex(3)}"
        database_url = await create_database(engines.pg.url, name)
        await asyncio.to_thread(upgrade, database_url)
        logs = engines.state / f"run-{run}"
        logs.mkdir()
        return cls(
            engines, database_url, f"f{secrets.token_hex(4)}", "cf_" + secrets.token_hex(16), logs
        )

    def env(self) -> dict[str, str]:
        keys = self.logs / "keys"
        if not keys.exists():
            keys.write_text(
                KeyRing.generate_text("fault-ca") + "\n" + KeyRing.generate_text("fault-leaf")
            )
        ca_keks, leaf_keks = keys.read_text().splitlines()
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")},
            "CERTFORGE_ENVIRONMENT": "development",
            "CERTFORGE_DATABASE_URL": self.database_url,
            "CERTFORGE_NATS_URL": self.engines.nats.url,
            "CERTFORGE_NATS__NAMESPACE": self.namespace,
            "CERTFORGE_CA_KEKS": ca_keks,
            "CERTFORGE_LEAF_KEKS": leaf_keks,
            "CERTFORGE_BOOTSTRAP_TOKEN": self.admin_token,
            "CERTFORGE_STATE_DIR": str(self.logs),
            "CERTFORGE_API_PORT": str(self.port),
            "CERTFORGE_CONSUMER__ACK_WAIT_SECONDS": "3",
            # a killed syncer's tasks come back after twice this (its ack wait), not 2 minutes
            "CERTFORGE_SYNCER__OPERATION_TIMEOUT_SECONDS": "5",
            "CERTFORGE_SYNCER__MAX_BACKOFF_SECONDS": "5",
            "CERTFORGE_ISSUANCE_REQUESTS_PER_IDENTITY": "0",
            "CERTFORGE_LOG_LEVEL": "WARNING",
        }

    def start(self, service: str) -> None:
        log = (self.logs / f"{service}.log").open("ab")
        self.processes[service] = subprocess.Popen(
            [str(BIN / f"certforge-{service}")],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def kill(self, service: str) -> None:
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.restarts[service] = self.restarts.get(service, 0) + 1

    def exited(self) -> Iterator[tuple[str, int]]:
        for name, process in self.processes.items():
            if process.poll() is not None:
                yield name, process.returncode

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                for name, code in self.exited():
                    raise RuntimeError(f"{name} exited with {code}: see {self.logs}/{name}.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the api was not ready in {seconds} s")
                await asyncio.sleep(0.2)
