"""The issuer's command consumer: a durable JetStream pull consumer on `<ns>.cmd.>`, shared by
every issuer replica, fetched in batches.

A plain nats-py fetch loop rather than FastStream's batch subscriber: FastStream keeps fetching
until the batch is full or its timeout passes, which at low load adds that whole timeout to
every request's latency; `fetch` returns as soon as some messages are there, so a lone request
is signed at once and a burst is signed in batches.

Acknowledgement follows outcome: a handled batch (issued or recorded as failed) is acked; a
transient failure (database down) nacks it with a growing delay; a message that cannot be
decoded is terminated, since no retry can fix it; a command this version has no handler for is
left for a replica that has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import BaseModel, Field

from certforge.common.consumer import measure_lag, subscribe_durable
from certforge.common.contracts.subjects import Subjects

log = logging.getLogger(__name__)

Handler = Callable[[list[Msg]], Awaitable[None]]


class ConsumerSettings(BaseModel):
    """The issuer's command consumer (`CERTFORGE_CONSUMER__…`)."""

    batch_size: int = Field(default=64, ge=1, le=1000, description="commands fetched at once")
    ack_wait_seconds: float = Field(
        default=60.0,
        ge=1,
        description="a command not acknowledged in this time (its issuer died) is redelivered",
    )
    max_backoff_seconds: float = Field(
        default=30.0, gt=0, description="longest redelivery delay after a transient failure"
    )


class CommandConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        subjects: Subjects,
        handlers: dict[str, Handler],
        settings: ConsumerSettings,
    ) -> None:
        self._js = js
        self._subjects = subjects
        self._handlers = handlers
        self._settings = settings
        self.durable = subjects.durable("issuer")

    async def run(self, stopping: asyncio.Event) -> None:
        subscription = await subscribe_durable(
            self._js,
            stopping,
            subject=self._subjects.commands_wildcard,
            stream=self._subjects.commands_stream,
            durable=self.durable,
            ack_wait=self._settings.ack_wait_seconds,
            max_ack_pending=self._settings.batch_size * 16,
        )
        if subscription is None:
            return
        last_measure = 0.0
        while not stopping.is_set():
            if time.monotonic() - last_measure > 5:
                last_measure = time.monotonic()
                await measure_lag(self._js, self._subjects.commands_stream, self.durable)
            try:
                messages = await subscription.fetch(self._settings.batch_size, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except ConnectionClosedError:
                return
            except Exception as exc:  # NATS reconnecting: wait, keep going
                log.warning("command fetch failed: %s", exc)
                await asyncio.sleep(1)
                continue
            await self._dispatch(messages)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async def _dispatch(self, messages: list[Msg]) -> None:
        groups: dict[str, list[Msg]] = {}
        for msg in messages:
            if msg.subject in self._handlers:
                groups.setdefault(msg.subject, []).append(msg)
            else:  # a newer version's command during a rolling upgrade: leave it for that one
                log.warning("no handler for %s; redelivering later", msg.subject)
                await msg.nak(delay=self._settings.max_backoff_seconds)
        for subject, group in groups.items():
            try:
                await self._handlers[subject](group)
            except Exception as exc:
                delay = self._backoff(group)
                log.warning(
                    "%d command(s) on %s will be retried in %.0fs: %s",
                    len(group),
                    subject,
                    delay,
                    exc,
                )
                for msg in group:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=delay)
                continue
            for msg in group:
                with contextlib.suppress(Exception):
                    await msg.ack()

    def _backoff(self, group: list[Msg]) -> float:
        deliveries = max(m.metadata.num_delivered for m in group)
        return min(2.0 ** min(deliveries, 10), self._settings.max_backoff_seconds)
