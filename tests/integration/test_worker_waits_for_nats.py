"""A service started while NATS cannot serve JetStream yet (restarting, paused, electing a stream
leader) waits for it instead of exiting (found by the fault suite: seed 19 started a syncer
just before NATS was paused, and the syncer exited when declaring its streams timed out).

Deterministic here: a `nats-server` without JetStream answers every JetStream request with an
error, as one that is not ready does; the worker keeps retrying until a server with JetStream
takes the port, then starts and serves."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from certforge.common.runtime import Worker
from certforge.common.settings import CommonSettings
from certforge.devstack import free_port, tcp_reachable
from certforge.devstack.nats import find_nats_server
from harness import Backends, delete_namespace

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _nats(port: int, store: Path | None) -> subprocess.Popen[bytes]:
    argv = [str(find_nats_server()), "-a", "127.0.0.1", "-p", str(port)]
    if store is not None:
        argv += ["-js", "-sd", str(store)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if tcp_reachable("127.0.0.1", port, timeout=0.1):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("nats-server did not start")


async def test_a_worker_waits_for_jetstream_then_starts(
    backends: Backends, env_for: None, tmp_path: Path
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    settings = CommonSettings(
        nats_url=url,
        nats={"namespace": "waits_for_js"},  # type: ignore[arg-type]
    )
    server = _nats(port, store=None)
    worker = Worker("probe", settings)
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    task = asyncio.create_task(worker.run(on_started, handle_signals=False))
    try:
        await asyncio.sleep(4)
        assert not task.done(), f"the worker gave up instead of waiting: {task}"
        assert not started.is_set()
        server.terminate()
        server.wait(10)
        server = _nats(port, store=tmp_path / "js")
        await asyncio.wait_for(started.wait(), timeout=30)
        assert (await worker.ready())["nats"] == "ok"
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)
        await delete_namespace(url, "waits_for_js")
        server.terminate()
        server.wait(10)
