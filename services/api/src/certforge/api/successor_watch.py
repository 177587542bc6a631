"""Wake long-polls of `GET …/certificates/{id}/successor` when the issuer renews a certificate.

The issuer announces every renewal as `certificate.renewed` (with `renewed_from_id`) on the
events stream; like `outcomes.Outcomes`, one plain core-NATS subscription per api process sees
them all without a JetStream consumer of its own, and wakes the waiters keyed by the renewed
certificate's id. Nothing is polled while a caller waits, and no database connection is held.

The subscription is made on the first watch a process serves (an api that never serves one
holds none) and lives as long as the NATS connection, which the lifespan drains at shutdown.
An event can be missed during a reconnect, so the route re-reads the lineage after every wait:
a missed event costs the caller at most one wait, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from certforge.common.contracts.events import CertificateRenewed
from certforge.common.contracts.subjects import Subjects

log = logging.getLogger(__name__)


class SuccessorWatch:
    def __init__(self) -> None:
        self._waiters: dict[UUID, set[asyncio.Future[None]]] = {}
        self._subscription: Subscription | None = None
        self._starting = asyncio.Lock()

    async def ensure_started(self, nats: NatsClient, subjects: Subjects) -> None:
        """Subscribe once; `flush` makes the server hold the subscription before the caller
        reads the database, so a renewal committed after that read is never missed."""
        if self._subscription is not None:
            return
        async with self._starting:
            if self._subscription is None:
                subject = subjects.event("*", CertificateRenewed.event_name)
                self._subscription = await nats.subscribe(subject, cb=self._on_event)
                await nats.flush()

    async def _on_event(self, msg: Msg) -> None:
        try:
            renewed_from = UUID(orjson.loads(msg.data)["data"]["renewed_from_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a renewal event without renewed_from_id on %s", msg.subject)
            return
        for future in self._waiters.pop(renewed_from, set()):
            if not future.done():
                future.set_result(None)

    def expect(self, certificate_id: UUID) -> asyncio.Future[None]:
        """Register before reading the lineage, so no renewal slips between read and wait."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(certificate_id, set()).add(future)
        return future

    def forget(self, certificate_id: UUID, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(certificate_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[certificate_id]

    @property
    def waiting(self) -> int:
        """Callers waiting now (for tests and a look from a debugger)."""
        return sum(len(w) for w in self._waiters.values())
