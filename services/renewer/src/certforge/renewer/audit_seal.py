"""The loop that seals the audit log's hash chain (`certforge.common.audit_chain_store`).

It lives in the renewer because the renewer is the worker that already walks the database on a
clock; any number of replicas may run it, the store's advisory lock makes them take turns. The
same clock drops rate-limit buckets that have been idle long enough to be full again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

from certforge.common.audit_chain_store import seal_pending
from certforge.common.db.pool import LazyPool

log = logging.getLogger(__name__)

_IDLE_BUCKETS = "DELETE FROM rate_buckets WHERE updated_at < now() - interval '1 hour'"
"""Every limit refills within an hour, so an older bucket is full: dropping it changes nothing."""


class AuditSealer:
    def __init__(self, database: LazyPool, interval: timedelta, sweep_interval: timedelta) -> None:
        self._database = database
        self._interval = interval.total_seconds()
        self._sweep_interval = sweep_interval.total_seconds()

    async def seal(self, *, whole_log: bool = False) -> int:
        """Seal until nothing is pending; the number of entries linked."""
        db = await self._database.get()
        total = 0
        while sealed := await seal_pending(db, window=0 if whole_log else 10_000):
            total += sealed
        return total

    async def run(self, stopping: asyncio.Event) -> None:
        next_sweep = 0.0
        while not stopping.is_set():
            try:
                sweep = time.monotonic() >= next_sweep
                await self.seal(whole_log=sweep)
                if sweep:
                    await (await self._database.get()).execute(_IDLE_BUCKETS)
                    next_sweep = time.monotonic() + self._sweep_interval
            except Exception:
                log.exception("sealing the audit chain failed; the next pass retries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._interval)
