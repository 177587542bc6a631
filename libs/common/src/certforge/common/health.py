"""What `/livez` and `/readyz` mean, once for every service (the api and the workers).

- `/livez` (liveness): the process's event loop answers. Nothing else is checked, so a database
  or NATS outage never makes the kubelet restart every pod at once (a restart cannot fix them).
- `/readyz` (readiness): the service can do its work now: PostgreSQL answers, the NATS
  connection is up and the JetStream streams it publishes to and consumes from exist. A pod
  that is not ready is taken out of the Service's endpoints until it is.
- `/healthz` is kept as a deprecated alias with the meaning it had before (readiness on the
  api, liveness on the workers), for probes and scripts written against it.

Each check is bounded by `CHECK_TIMEOUT_SECONDS`: a probe that hangs is as bad as one that fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from certforge.common.contracts.subjects import Subjects
from certforge.common.messaging import stream_configs
from certforge.common.settings import NatsSettings

LIVE = "/livez"
READY = "/readyz"
LEGACY = "/healthz"
"""Deprecated: readiness on the api, liveness on the workers (the meanings before `/livez`)."""

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"


async def _bounded(check: Awaitable[object]) -> bool:
    try:
        await asyncio.wait_for(check, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception:  # any failure, timeouts included, means "not now"
        return False
    return True


async def _database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _streams(nats: NatsClient, subjects: Subjects, settings: NatsSettings) -> None:
    js = nats.jetstream()
    for config in stream_configs(subjects, settings):
        assert config.name is not None
        await js.stream_info(config.name)


async def readiness(
    engine: AsyncEngine, nats: NatsClient | None, subjects: Subjects, settings: NatsSettings
) -> dict[str, str]:
    """Each dependency's state (`ok` or why not): the body of `/readyz`."""
    checks = {
        "database": OK if await _bounded(_database(engine)) else "unreachable",
        "nats": OK if nats is not None and nats.is_connected else "disconnected",
    }
    if checks["nats"] == OK:
        assert nats is not None
        found = await _bounded(_streams(nats, subjects, settings))
        checks["streams"] = OK if found else "missing"
    else:
        checks["streams"] = "unknown"
    return checks


def is_ready(checks: Mapping[str, str]) -> bool:
    return all(state == OK for state in checks.values())
