"""NATS request handlers of the syncer. Thin: decode, ask the destination, encode the answer.

They always answer (with `ok: false` and a reason on any failure), so the api never waits for
a timeout because of bad input or a destination that hangs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from certforge.common.contracts.rpc import SyncTestReply, TestSync
from certforge.common.db.tables import SyncDestination
from certforge.common.runtime import Worker
from certforge.syncer.plugins.base import SyncError
from certforge.syncer.tasks import SyncTasks

log = logging.getLogger(__name__)

QUEUE = "certforge-syncer"


def register_test_handler(worker: Worker, tasks: SyncTasks, timeout_seconds: float) -> None:
    """`sync.test`: the destination is the one `tasks` pushes with (same cache, same build),
    so a test exercises exactly what a push would use."""

    @worker.broker.subscriber(worker.subjects.rpc_sync_test, queue=QUEUE, title="sync.test")
    async def on_test(body: dict[str, Any]) -> SyncTestReply:
        """Check a destination's credentials and reachability; never writes."""
        try:
            request = TestSync.model_validate(body)
        except ValueError:
            return SyncTestReply(ok=False, detail="bad request")
        async with worker.sessions() as session:
            sync = await session.get(SyncDestination, request.sync_id)
        if sync is None:
            return SyncTestReply(ok=False, detail="no such sync")
        try:
            destination = tasks.destination(sync)
            await asyncio.wait_for(destination.check(), timeout=timeout_seconds)
        except SyncError as exc:
            return SyncTestReply(ok=False, detail=str(exc))
        except TimeoutError:
            return SyncTestReply(ok=False, detail="the destination did not answer in time")
        except Exception:
            log.exception("testing sync %s failed", sync.id)
            return SyncTestReply(ok=False, detail="internal error in the syncer")
        return SyncTestReply(ok=True, detail=f"{sync.kind} destination reachable")
