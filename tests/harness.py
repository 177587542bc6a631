"""Shared test types (importable from any test module; conftest modules are not)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Backends:
    server_url: str
    database_url: str
    database_name: str
    nats_url: str
    namespace: str
    ca_keks: str
    leaf_keks: str
    admin_token: str
    state_dir: Path
    stoppers: list[object] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for service processes started by tests."""
        return {
            "CERTFORGE_ENVIRONMENT": "development",
            "CERTFORGE_DATABASE_URL": self.database_url,
            "CERTFORGE_NATS_URL": self.nats_url,
            "CERTFORGE_NATS__NAMESPACE": self.namespace,
            "CERTFORGE_CA_KEKS": self.ca_keks,
            "CERTFORGE_LEAF_KEKS": self.leaf_keks,
            "CERTFORGE_BOOTSTRAP_TOKEN": self.admin_token,
            "CERTFORGE_STATE_DIR": str(self.state_dir),
            **extra,
        }


async def delete_namespace(nats_url: str, namespace: str) -> None:
    """Delete the streams of a test namespace from the shared NATS."""
    import nats

    from certforge.common.contracts.subjects import Subjects
    from certforge.common.messaging import delete_streams
    from certforge.common.settings import NatsSettings

    client = await nats.connect(nats_url)
    try:
        await delete_streams(client.jetstream(), Subjects(namespace), NatsSettings())
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def running(worker: Any) -> AsyncIterator[None]:
    """A service's worker running in this process until the block ends (the session's real
    issuer, syncer, validator and notifier): started when it reports so, stopped cleanly."""
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    task = asyncio.create_task(worker.run(on_started, handle_signals=False))
    await asyncio.wait_for(started.wait(), timeout=30)
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)
