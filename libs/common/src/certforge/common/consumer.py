"""A durable JetStream pull consumer whose handler decides each message's fate.

Fetches in batches (returning as soon as some messages are there), gives the batch to one
handler, then acks, nacks with a delay, or terminates each message as the handler said. Any
number of replicas share the durable. Consumer lag is exported as metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from certforge.common.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """`ack`, `nak` (redeliver after `delay` seconds) or `term` (never redeliver)."""

    action: str
    delay: float = 0.0


ACK = Outcome("ack")
TERM = Outcome("term")


def nak(delay: float) -> Outcome:
    return Outcome("nak", delay)


BatchHandler = Callable[[list[Msg]], Awaitable[list[Outcome]]]


class PullConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        subject: str,
        durable: str,
        handler: BatchHandler,
        batch_size: int = 32,
        ack_wait_seconds: float = 60.0,
    ) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._durable = durable
        self._handler = handler
        self._batch_size = batch_size
        self._ack_wait = ack_wait_seconds

    async def run(self, stopping: asyncio.Event) -> None:
        subscription = await self._js.pull_subscribe(
            self._subject,
            durable=self._durable,
            stream=self._stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._ack_wait,
                max_ack_pending=self._batch_size * 16,
            ),
        )
        last_measure = 0.0
        while not stopping.is_set():
            if time.monotonic() - last_measure > 5:
                last_measure = time.monotonic()
                await self._measure_lag()
            try:
                messages = await subscription.fetch(self._batch_size, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except ConnectionClosedError:
                return
            except Exception as exc:  # NATS reconnecting: wait, keep going
                log.warning("fetch on %s failed: %s", self._durable, exc)
                await asyncio.sleep(1)
                continue
            try:
                outcomes = await self._handler(messages)
            except Exception:
                log.exception("handler of %s failed; the batch is redelivered", self._durable)
                outcomes = [nak(5.0)] * len(messages)
            for msg, outcome in zip(messages, outcomes, strict=True):
                with contextlib.suppress(Exception):
                    if outcome.action == "ack":
                        await msg.ack()
                    elif outcome.action == "nak":
                        await msg.nak(delay=outcome.delay)
                    else:
                        await msg.term()
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async def _measure_lag(self) -> None:
        with contextlib.suppress(Exception):
            info = await self._js.consumer_info(self._stream, self._durable)
            CONSUMER_PENDING.labels(self._durable).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(self._durable).set(info.num_ack_pending or 0)
