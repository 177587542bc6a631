"""The system as separate processes, for the suites that break it (tests/faults, tests/scale):
engines of its own (PostgreSQL, NATS, a moto_server for ACM) that can be paused, killed and
restarted without touching anything else on the machine, and the api, issuer, syncer and
renewer, one or more processes each, any of which can be SIGKILLed and started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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
    """One run's services, each with `replicas[service]` processes: a database and namespace of
    their own on the engines. The first process of a service is named after it (`issuer`), the
    others `issuer.2`, `issuer.3`…; each api process listens on a port of its own."""

    database_url: str
    nats_url: str
    namespace: str
    admin_token: str
    logs: Path
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def create(
        cls,
        admin_url: str,
        nats_url: str,
        run: str,
        logs: Path,
        *,
        database_url: Callable[[str], str] | None = None,
        replicas: int = 1,
    ) -> Services:
        """A database made on `admin_url` (and reached through `database_url(name)` when the
        services must see it otherwise: several hosts), migrated, and a log directory."""
        from certforge.common.db.migrations import upgrade

        name = f"cf_{run}_{secrets.token_hex(3)}"
        url = await create_database(admin_url, name)
        if database_url is not None:
            url = database_url(name)
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(logs.mkdir, parents=True)
        return cls(
            url,
            nats_url,
            f"f{secrets.token_hex(4)}",
            "cf_" + secrets.token_hex(16),
            logs,
            replicas=dict.fromkeys(SERVICES, replicas),
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
            "CERTFORGE_NATS_URL": self.nats_url,
            "CERTFORGE_NATS__NAMESPACE": self.namespace,
            "CERTFORGE_CA_KEKS": ca_keks,
            "CERTFORGE_LEAF_KEKS": leaf_keks,
            "CERTFORGE_BOOTSTRAP_TOKEN": self.admin_token,
            "CERTFORGE_STATE_DIR": str(self.logs),
            "CERTFORGE_CONSUMER__ACK_WAIT_SECONDS": "3",
            # a killed syncer's tasks come back after twice this (its ack wait), not 2 minutes
            "CERTFORGE_SYNCER__OPERATION_TIMEOUT_SECONDS": "5",
            "CERTFORGE_SYNCER__EVENTS_ACK_WAIT_SECONDS": "5",
            "CERTFORGE_SYNCER__MAX_BACKOFF_SECONDS": "5",
            "CERTFORGE_ISSUANCE_REQUESTS_PER_IDENTITY": "0",
            "CERTFORGE_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }

    def names(self, service: str | None = None) -> list[str]:
        """Process names, of one service or of all."""
        services = [service] if service else list(SERVICES)
        return [
            s if i == 1 else f"{s}.{i}" for s in services for i in range(1, self.replicas[s] + 1)
        ]

    def start(self, name: str) -> None:
        service = name.split(".")[0]
        env = self.env()
        if service == "api":
            env["CERTFORGE_API_PORT"] = str(self.ports.setdefault(name, free_port()))
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [str(BIN / f"certforge-{service}")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def start_all(self) -> None:
        for name in self.names():
            self.start(name)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.restarts[name] = self.restarts.get(name, 0) + 1

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
    def urls(self) -> list[str]:
        """Every api process's address (a client spreads its requests over them)."""
        return [f"http://127.0.0.1:{self.ports[name]}" for name in self.names("api")]

    @property
    def url(self) -> str:
        return self.urls[0]

    async def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=2) as client:
            for url in self.urls:
                while True:
                    try:
                        if (await client.get(f"{url}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    for name, code in self.exited():
                        raise RuntimeError(f"{name} exited with {code}: see {self.logs}/{name}.log")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} was not ready in {seconds} s")
                    await asyncio.sleep(0.2)
