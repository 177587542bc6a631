"""`/readyz` against real PostgreSQL and NATS: ready only when the database answers, NATS is
connected and the JetStream streams exist (`certforge.common.health`)."""

from __future__ import annotations

import secrets

import pytest

from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import create_engine
from certforge.common.health import is_ready, readiness
from certforge.common.messaging import connect, delete_streams, ensure_streams
from certforge.common.settings import NatsSettings
from harness import Backends

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_readiness_follows_database_nats_and_streams(backends: Backends) -> None:
    settings = NatsSettings()
    subjects = Subjects(f"r{secrets.token_hex(4)}")  # a namespace of its own: no streams yet
    engine = create_engine(backends.database_url, pool_size=1)
    nats = await connect(backends.nats_url, name="readiness-test")
    try:
        missing = await readiness(engine, nats, subjects, settings)
        assert missing == {"database": "ok", "nats": "ok", "streams": "missing"}
        assert not is_ready(missing)

        await ensure_streams(nats.jetstream(), subjects, settings)
        ready = await readiness(engine, nats, subjects, settings)
        assert ready == {"database": "ok", "nats": "ok", "streams": "ok"}
        assert is_ready(ready)

        await nats.close()
        closed = await readiness(engine, nats, subjects, settings)
        assert closed == {"database": "ok", "nats": "disconnected", "streams": "unknown"}

        down = create_engine("postgresql://postgres@127.0.0.1:1/none", pool_size=1)
        try:
            checks = await readiness(down, None, subjects, settings)
        finally:
            await down.dispose()
        assert checks["database"] == "unreachable"
    finally:
        cleanup = await connect(backends.nats_url, name="readiness-cleanup")
        await delete_streams(cleanup.jetstream(), subjects, settings)
        await cleanup.close()
        if nats.is_connected:
            await nats.close()
        await engine.dispose()
