"""The api replicas that serve OCSP answers from memory, and making all of them forget one.

A revocation must be answered `revoked` by every replica from the moment the revoking call
returns, while each replica serves pre-signed answers from its own memory. So the revoking
replica asks every other one to forget the certificate's answer (core NATS request on
`Subjects.api_forget`) and waits for each to acknowledge before it answers its caller.

Who "every other one" is comes from heartbeats: each replica publishes its id every `heartbeat`
seconds on `Subjects.api_heartbeat` and listens to everyone's. Serving from memory is a lease:
a replica does so only while it has heard its own heartbeat within `lease` seconds (proof that
its subscriptions work) and only from its second heartbeat on (by then the others have heard
it). A replica that does not acknowledge in time may be cut off from NATS, so the revoker waits
until that replica's lease has run out, counted from the last heartbeat the revoker heard from
it; a replica that may not serve from memory answers from PostgreSQL, which is always current.
A revocation therefore returns within one round trip normally, and within about `lease`
seconds when a replica has just died. Should the revoking replica itself be unable to reach
NATS, the others still forget when the `certificate.revoked` event the revocation committed
reaches them through the outbox (every replica also listens to those events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from uuid import uuid4

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from certforge.common.contracts.events import CertificateRevoked
from certforge.common.contracts.subjects import Subjects

log = logging.getLogger(__name__)

_LEASE_MARGIN = 0.5
"""Seconds added to a silent replica's lease: it may hear its own heartbeat a little after us."""


class Replicas:
    def __init__(
        self,
        nats: NatsClient,
        subjects: Subjects,
        forget: Callable[[bytes], None],
        *,
        heartbeat: float = 1.0,
        lease: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = uuid4().hex
        self._nats = nats
        self._subjects = subjects
        self._forget = forget
        self._heartbeat = heartbeat
        self._lease = lease
        self._clock = clock
        self._members: dict[str, float] = {}
        """Other replicas' ids -> when we last heard them."""
        self._own_heard: float | None = None
        self._own_beats = 0
        self._subscriptions: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        revoked = self._subjects.event("*", CertificateRevoked.event_name)
        self._subscriptions = [
            await self._nats.subscribe(self._subjects.api_heartbeat, cb=self._on_heartbeat),
            await self._nats.subscribe(self._subjects.api_forget, cb=self._on_forget),
            await self._nats.subscribe(revoked, cb=self._on_revoked_event),
        ]
        self._task = asyncio.create_task(self._beat(), name="api-replica-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def may_serve_from_memory(self) -> bool:
        heard = self._own_heard
        return (
            self._own_beats >= 2
            and heard is not None
            and self._clock() - heard < self._lease
            and self._nats.is_connected
        )

    def members(self) -> set[str]:
        """The other replicas heard within the lease: those a forget waits for."""
        now = self._clock()
        return {m for m, heard in self._members.items() if now - heard < self._lease}

    async def forget_everywhere(self, message: bytes) -> None:
        """Forget here, then wait until every live replica has forgotten (or lost its lease)."""
        self._forget(message)
        waiting = {m: self._members[m] for m in self.members()}
        if not waiting:
            return
        try:
            await self._ask_to_forget(message, waiting)
        except Exception:
            log.exception(
                "could not ask the other api replicas to forget an OCSP answer; they forget it "
                "when the certificate.revoked event reaches them"
            )

    async def _ask_to_forget(self, message: bytes, waiting: dict[str, float]) -> None:
        all_acked = asyncio.Event()

        async def on_ack(msg: Msg) -> None:
            waiting.pop(msg.data.decode(errors="replace"), None)
            if not waiting:
                all_acked.set()

        inbox = self._nats.new_inbox()
        subscription = await self._nats.subscribe(inbox, cb=on_ack)
        try:
            await self._nats.publish(self._subjects.api_forget, message, reply=inbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_acked.wait(), timeout=self._lease)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        if waiting:
            until = max(waiting.values()) + self._lease + _LEASE_MARGIN
            log.warning(
                "api replica(s) %s did not confirm forgetting an OCSP answer; waiting %.1f s "
                "for their lease to run out",
                sorted(waiting),
                max(0.0, until - self._clock()),
            )
            await asyncio.sleep(max(0.0, until - self._clock()))

    async def _beat(self) -> None:
        while True:
            try:
                await self._nats.publish(self._subjects.api_heartbeat, self.id.encode())
            except Exception:
                log.warning("could not publish the api replica heartbeat", exc_info=True)
            await asyncio.sleep(self._heartbeat)

    async def _on_heartbeat(self, msg: Msg) -> None:
        sender = msg.data.decode(errors="replace")
        now = self._clock()
        if sender == self.id:
            self._own_heard = now
            self._own_beats += 1
            return
        self._members[sender] = now
        gone = [m for m, heard in self._members.items() if now - heard > 10 * self._lease]
        for member in gone:
            del self._members[member]

    async def _on_revoked_event(self, msg: Msg) -> None:
        try:
            data = orjson.loads(msg.data)["data"]
            self._forget(f"{data['ca_id']}:{data['serial_number']}".encode())
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a certificate.revoked event without ca_id and serial_number")

    async def _on_forget(self, msg: Msg) -> None:
        self._forget(msg.data)
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(self.id.encode())
