"""Learn a request's outcome from the issuer's events, for `Prefer: wait`.

The issuer announces `certificate.issued`/`renewed` and `request.failed` on the events stream;
JetStream subjects are ordinary subjects too, so every api replica receives them on a plain
(core) subscription without a consumer of its own. A waiter wakes as soon as the event
arrives; no polling of PostgreSQL. Events can arrive before a waiter registers or be missed
during a reconnect, so callers re-read the request after registering and after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from certforge.common.contracts.events import CertificateIssued, CertificateRenewed, RequestFailed
from certforge.common.contracts.subjects import Subjects

log = logging.getLogger(__name__)

_OUTCOME_EVENTS = (CertificateIssued, CertificateRenewed, RequestFailed)


class Outcomes:
    def __init__(self) -> None:
        self._waiters: dict[UUID, set[asyncio.Future[None]]] = {}
        self._subscriptions: list[Subscription] = []

    async def start(self, nats: NatsClient, subjects: Subjects) -> None:
        for event in _OUTCOME_EVENTS:
            subject = subjects.event("*", event.event_name)
            self._subscriptions.append(await nats.subscribe(subject, cb=self._on_event))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _on_event(self, msg: Msg) -> None:
        try:
            request_id = UUID(orjson.loads(msg.data)["data"]["request_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an outcome event without a request_id on %s", msg.subject)
            return
        for future in self._waiters.pop(request_id, set()):
            if not future.done():
                future.set_result(None)

    def expect(self, request_id: UUID) -> asyncio.Future[None]:
        """Register before looking at the request's state, so no event slips between."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, set()).add(future)
        return future

    async def wait(self, request_id: UUID, future: asyncio.Future[None], seconds: float) -> None:
        """Wait up to `seconds` for the outcome; returns either way."""
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=seconds)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(request_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[request_id]
