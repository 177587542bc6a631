"""Engines of more than one server, on loopback: a three-node NATS JetStream cluster whose
members can be SIGKILLed and brought back, and a PostgreSQL primary with a synchronous streaming
standby that can be promoted (tests/scale)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js.errors import NotFoundError

from certforge.common.messaging import server_list
from certforge.devstack import free_port, start_postgres, tcp_reachable
from certforge.devstack.nats import find_nats_server
from certforge.devstack.postgres import ManagedPostgres
from certforge.devstack.process import tail

HOST = "127.0.0.1"


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class NatsCluster:
    """Three `nats-server` processes clustered over routes on loopback, JetStream on each."""

    state: Path
    nodes: list[NatsNode] = field(default_factory=list)

    @classmethod
    def start(cls, state: Path, size: int = 3) -> NatsCluster:
        cluster = cls(state)
        ports = [(free_port(), free_port()) for _ in range(size)]
        routes = ", ".join(f"nats://{HOST}:{c}" for _, c in ports)
        for i, (port, cluster_port) in enumerate(ports, start=1):
            name = f"n{i}"
            store = state / name
            store.mkdir(parents=True)
            config = state / f"{name}.conf"
            config.write_text(
                f"server_name: {name}\nlisten: {HOST}:{port}\n"
                f'jetstream {{ store_dir: "{store}" }}\n'
                f"cluster {{ name: certforge\n  listen: {HOST}:{cluster_port}\n"
                f"  routes: [{routes}]\n}}\n"
            )
            cluster.nodes.append(NatsNode(name, port, cluster_port, config, state / f"{name}.log"))
        for node in cluster.nodes:
            cluster.start_node(node.name)
        return cluster

    @property
    def url(self) -> str:
        """Every member, comma-separated, as `CERTFORGE_NATS_URL` takes a cluster."""
        return ",".join(f"nats://{HOST}:{n.port}" for n in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def start_node(self, name: str, timeout: float = 15.0) -> None:
        node = self.node(name)
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [str(find_nats_server()), "-c", str(node.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not tcp_reachable(HOST, node.port, timeout=0.2):
            if node.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {name} did not start:\n{tail(node.log)}")
            time.sleep(0.05)

    def kill_node(self, name: str) -> None:
        node = self.node(name)
        if node.process is not None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)
            node.process = None

    async def wait_ready(self, seconds: float = 30.0) -> None:
        """Until JetStream answers through every member (the cluster elected its meta leader)."""
        deadline = time.monotonic() + seconds
        for node in self.nodes:
            while True:
                with contextlib.suppress(Exception):
                    client = await nats.connect(f"nats://{HOST}:{node.port}", connect_timeout=2)
                    try:
                        await client.jetstream(timeout=2).account_info()
                        break
                    finally:
                        await client.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JetStream not ready on {node.name}:\n{tail(node.log)}")
                await asyncio.sleep(0.5)

    async def leader_of(self, stream: str) -> str | None:
        """The server name of the stream's leader (None while it has none)."""
        client = await nats.connect(
            server_list(self.url), connect_timeout=2, max_reconnect_attempts=2
        )
        try:
            info = await client.jetstream(timeout=5).stream_info(stream)
        except (NotFoundError, TimeoutError, nats.errors.Error):
            return None
        finally:
            await client.close()
        return info.cluster.leader if info.cluster else None

    async def replicas_of(self, stream: str) -> int:
        client = await nats.connect(server_list(self.url), connect_timeout=2)
        try:
            info = await client.jetstream(timeout=5).stream_info(stream)
        finally:
            await client.close()
        return info.config.num_replicas or 1

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                node.process = None


@dataclass
class PostgresPair:
    """A primary and a streaming standby of it. Replication is synchronous
    (`synchronous_standby_names = '*'` on the primary): a commit is acknowledged once the standby
    has it, so promoting the standby loses nothing that a client was told succeeded. The
    setting is the primary's alone (a command-line parameter, not copied by the base backup),
    so the promoted standby then commits on its own."""

    primary: ManagedPostgres
    standby: ManagedPostgres

    @classmethod
    def start(cls, state: Path) -> PostgresPair:
        primary = start_postgres(state / "pg-a", settings={"synchronous_standby_names": "*"})
        standby = start_postgres(state / "pg-b", standby_of=primary)
        return cls(primary, standby)

    def url_for(self, database: str) -> str:
        """Both servers, the primary first, and only a server that accepts writes will do."""
        hosts = f"{self.primary.host}:{self.primary.port},{self.standby.host}:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    async def wait_streaming(self, seconds: float = 30.0) -> None:
        """Until the primary sees its standby streaming synchronously."""
        import asyncpg

        deadline = time.monotonic() + seconds
        while True:
            conn = await asyncpg.connect(self.primary.url)
            try:
                state = await conn.fetchval("SELECT sync_state FROM pg_stat_replication LIMIT 1")
            finally:
                await conn.close()
            if state == "sync":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby is not streaming ({state})")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()
