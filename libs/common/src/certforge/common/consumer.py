"""A durable JetStream pull consumer whose handler decides each message's fate: the one consumer
loop of every service (the issuer's commands, the syncer's events and tasks); each service's
behaviour is its batch handler.

Fetches in batches, gives the batch to one handler, then acks, nacks with a delay, or terminates
each message as the handler said. Any number of replicas share the durable. Consumer lag is
exported as metrics.

A plain nats-py fetch loop rather than FastStream's batch subscriber: FastStream keeps fetching
until the batch is full or its timeout passes, which at low load adds that whole timeout to
every message's latency; `fetch` returns as soon as some messages are there, so a lone command
is handled at once and a burst in batches.

With `max_in_flight`, messages are handled one by one instead, up to that many at once, each
settled as soon as its own handling ends, and fetching goes on while some are in flight: one
slow message (a destination that hangs until its timeout) then holds one slot, not the whole
batch and every message behind it.

Creating the consumer is retried until it works (NATS restarting, a slow answer at start-up):
a consumer loop that gave up there would leave the service running and consuming nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from certforge.common.backoff import backoff_delay
from certforge.common.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settlement:
    """How a handled message is settled with JetStream: `ack`, `nak` (redeliver after `delay`
    seconds) or `term` (never redeliver). Not to be confused with a certificate request's
    outcome (issued or failed), which the api waits for in `api/outcomes.py`."""

    action: str
    delay: float = 0.0


ACK = Settlement("ack")
TERM = Settlement("term")


def nak(delay: float) -> Settlement:
    return Settlement("nak", delay)


BatchHandler = Callable[[list[Msg]], Awaitable[list[Settlement]]]


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
        max_in_flight: int | None = None,
    ) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._durable = durable
        self._handler = handler
        self._batch_size = batch_size
        self._ack_wait = ack_wait_seconds
        self._max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        subscription = await self._subscribe(stopping)
        if subscription is None:
            return
        last_measure = 0.0
        try:
            while not stopping.is_set():
                if time.monotonic() - last_measure > 5:
                    last_measure = time.monotonic()
                    await self._measure_lag()
                wanted = self._batch_size
                if self._max_in_flight is not None:
                    free = self._max_in_flight - len(self._in_flight)
                    if free <= 0:
                        await asyncio.wait(
                            self._in_flight, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                        )
                        continue
                    wanted = min(wanted, free)
                try:
                    messages = await subscription.fetch(wanted, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except ConnectionClosedError:
                    return
                except Exception as exc:  # NATS reconnecting: wait, keep going
                    log.warning("fetch on %s failed: %s", self._durable, exc)
                    await asyncio.sleep(1)
                    continue
                if self._max_in_flight is None:
                    await self._handle(messages)
                    continue
                for msg in messages:
                    task = asyncio.create_task(self._handle([msg]))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        finally:
            # What is in flight finishes and is settled (each is bounded by its handler).
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _subscribe(self, stopping: asyncio.Event) -> Any:
        return await subscribe_durable(
            self._js,
            stopping,
            subject=self._subject,
            stream=self._stream,
            durable=self._durable,
            ack_wait=self._ack_wait,
            max_ack_pending=max(self._batch_size * 16, self._max_in_flight or 0),
        )

    async def _handle(self, messages: list[Msg]) -> None:
        try:
            settlements = await self._handler(messages)
        except Exception:
            log.exception("handler of %s failed; the messages are redelivered", self._durable)
            settlements = [nak(5.0)] * len(messages)
        for msg, settlement in zip(messages, settlements, strict=True):
            with contextlib.suppress(Exception):
                if settlement.action == "ack":
                    await msg.ack()
                elif settlement.action == "nak":
                    await msg.nak(delay=settlement.delay)
                else:
                    await msg.term()

    async def _measure_lag(self) -> None:
        await measure_lag(self._js, self._stream, self._durable)


async def subscribe_durable(
    js: JetStreamContext,
    stopping: asyncio.Event,
    *,
    subject: str,
    stream: str,
    durable: str,
    ack_wait: float,
    max_ack_pending: int,
) -> Any:
    """A durable pull subscription, retried until NATS answers (None if stopped first): a
    consumer that failed to start must not leave its service running without consuming. The
    retries are jittered, so replicas started together do not retry in lock-step."""
    attempt = 0
    while not stopping.is_set():
        try:
            return await js.pull_subscribe(
                subject,
                durable=durable,
                stream=stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=ack_wait,
                    max_ack_pending=max_ack_pending,
                ),
            )
        except ConnectionClosedError:
            return None
        except Exception as exc:
            attempt += 1
            delay = backoff_delay(attempt, base=0.5, cap=10.0)
            log.warning(
                "creating consumer %s failed (%s); retrying in %.1f s",
                durable,
                type(exc).__name__,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
    return None


async def measure_lag(js: JetStreamContext, stream: str, durable: str) -> None:
    """Export a durable consumer's lag (undelivered, unacknowledged); never raises."""
    with contextlib.suppress(Exception):
        info = await js.consumer_info(stream, durable)
        CONSUMER_PENDING.labels(durable).set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(durable).set(info.num_ack_pending or 0)
