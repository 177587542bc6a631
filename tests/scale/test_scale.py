"""Issue 21: Certforge beyond one machine, proven on loopback (`make test-scale`, also run by
`.ci/run`; figures in tests/scale/RESULTS.md).

- A three-node NATS JetStream cluster with streams of 3 replicas: the leader of the commands
  stream is killed, then another member (the cluster loses its quorum), then both come back.
- A PostgreSQL primary with a synchronous streaming standby, reached through a two-host URL with
  `target_session_attrs=read-write`: the standby is promoted while the load runs and the old
  primary stopped.
- Two processes of every service, one of each killed during the run.
- The same load without faults on one and on two processes of each service (throughput).

After each run every check of `load_checks_kit` holds, plus: each certificate made due for the
renewer renewed exactly once, no server error other than 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scale_run import Run, mixed_load

from certforge.common.contracts.subjects import Subjects
from certforge.devstack import start_nats, start_postgres
from cluster_kit import NatsCluster, PostgresPair
from stack_kit import SERVICES, Services

pytestmark = [pytest.mark.scale, pytest.mark.timeout(900)]

RENEWER_SCAN = {"CERTFORGE_RENEWER__INTERVAL": "2s"}


@pytest.fixture
def state() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cf-scale-", dir="/tmp"))
    yield path
    if not os.environ.get("CERTFORGE_SCALE_KEEP"):  # the services' logs, to read after a run
        shutil.rmtree(path, ignore_errors=True)


def _assert_held(record: dict[str, object]) -> None:
    assert not record["problems"], record["problems"]
    assert record["unanswered"] == 0
    assert record["duplicates"] == 0


async def test_nats_cluster_loses_its_leader_then_its_quorum(state: Path) -> None:
    cluster = NatsCluster.start(state / "nats")
    pg = start_postgres(state / "pg")
    try:
        await cluster.wait_ready()
        services = await Services.create(pg.url, cluster.url, "nats", state / "run")
        services.extra_env = {**RENEWER_SCAN, "CERTFORGE_NATS__STREAM_REPLICAS": "3"}
        commands = Subjects(services.namespace).commands_stream

        async def faults(note: Callable[[str], None]) -> None:
            await asyncio.sleep(4)
            assert await cluster.replicas_of(commands) == 3
            leader = await cluster.leader_of(commands)
            assert leader is not None
            cluster.kill_node(leader)
            note(f"kill {leader} (leader of {commands})")
            await asyncio.sleep(6)
            other = await cluster.leader_of(commands) or next(
                n.name for n in cluster.nodes if n.name != leader
            )
            cluster.kill_node(other)
            note(f"kill {other}: one of three left, no quorum")
            await asyncio.sleep(5)
            await asyncio.to_thread(cluster.start_node, leader)
            note(f"restart {leader}: quorum again")
            await asyncio.sleep(4)
            await asyncio.to_thread(cluster.start_node, other)
            note(f"restart {other}")

        run = Run(services, "nats-cluster")
        _assert_held(await mixed_load(run, faults, directory=_directory(services)))
    finally:
        pg.stop()
        cluster.stop()


async def test_postgres_fails_over_to_its_standby(state: Path) -> None:
    pair = PostgresPair.start(state / "pg")
    nats = start_nats(state / "nats")
    try:
        await pair.wait_streaming()
        services = await Services.create(
            pair.primary.url, nats.url, "failover", state / "run", database_url=pair.url_for
        )
        services.extra_env = RENEWER_SCAN

        async def faults(note: Callable[[str], None]) -> None:
            await asyncio.sleep(6)
            await asyncio.to_thread(pair.standby.promote)
            note("promote the standby")
            await asyncio.to_thread(pair.primary.stop)
            note("stop the old primary")

        run = Run(services, "postgres-failover")
        record = await mixed_load(run, faults, directory=_directory(services))
        _assert_held(record)
    finally:
        nats.stop()
        pair.stop()


@contextlib.contextmanager
def _one_of_each(state: Path) -> Iterator[tuple[str, str]]:
    """One PostgreSQL and one NATS server: (admin database URL, NATS URL)."""
    pg = start_postgres(state / "pg")
    nats = start_nats(state / "nats")
    try:
        yield pg.url, nats.url
    finally:
        nats.stop()
        pg.stop()


async def test_two_of_each_service_one_killed(state: Path) -> None:
    with _one_of_each(state) as (pg_url, nats_url):
        services = await Services.create(pg_url, nats_url, "replicas", state / "run", replicas=2)
        services.extra_env = RENEWER_SCAN

        async def faults(note: Callable[[str], None]) -> None:
            for service in SERVICES:
                await asyncio.sleep(3)
                victim = services.names(service)[1]
                services.kill(victim)
                note(f"kill {victim}")

        run = Run(services, "replicas")
        _assert_held(await mixed_load(run, faults, directory=_directory(services)))


@pytest.mark.parametrize("replicas", [1, 2])
async def test_throughput(state: Path, replicas: int) -> None:
    """The same load without faults; the figure is in the record (`issued_per_s`)."""
    with _one_of_each(state) as (pg_url, nats_url):
        services = await Services.create(
            pg_url, nats_url, f"throughput{replicas}", state / "run", replicas=replicas
        )
        services.extra_env = RENEWER_SCAN

        async def no_faults(note: Callable[[str], None]) -> None:
            return None

        run = Run(services, f"throughput-{replicas}")
        record = await mixed_load(run, no_faults, requests=1000, directory=_directory(services))
        _assert_held(record)


def _directory(services: Services) -> Path:
    directory = services.logs / "destination"
    directory.mkdir()
    return directory
