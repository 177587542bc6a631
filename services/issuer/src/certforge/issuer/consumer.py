"""The issuer's command consumer: the common `PullConsumer` on `<ns>.cmd.>`, shared by every
issuer replica, with `CommandRouter` as its batch handler.

The common loop's `fetch` returns as soon as some messages are there, so a lone request is
signed at once and a burst is signed in batches (see `certforge.common.consumer`).

Settlement follows outcome: a handled group of commands (issued or recorded as failed) is acked;
a transient failure (database down) naks the group with a growing, jittered delay; a message
that cannot be decoded is terminated, since no retry can fix it; a command this version has no
route for is left for a replica that has one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel, Field

from certforge.common.backoff import backoff_delay
from certforge.common.consumer import ACK, TERM, PullConsumer, Settlement, nak
from certforge.common.contracts.subjects import Subjects

log = logging.getLogger(__name__)

DecodedT = TypeVar("DecodedT")

UNDECODABLE = (ValueError, KeyError, TypeError)
"""What `CommandRoute.decode` raises for a message no retry can fix (pydantic's
`ValidationError` and orjson's decode error are `ValueError`s)."""

REDELIVERY_BASE_SECONDS = 2.0
"""The redelivery delay after a command's first delivery failed; it doubles per delivery."""


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


@dataclass(frozen=True)
class CommandRoute(Generic[DecodedT]):
    """How the commands of one subject are handled. Split in two so that a bad message is
    terminated alone, before the batch's work: `decode` reads one message (raising one of
    `UNDECODABLE` when it cannot), `act` does the work for every decoded message of the batch
    at once (one transaction for many requests); raising there means "retry later"."""

    decode: Callable[[Msg], DecodedT]
    act: Callable[[list[DecodedT]], Awaitable[None]]


class CommandRouter:
    """The issuer's batch handler: groups a fetched batch by subject and gives each group to its
    route. `rand` draws the redelivery jitter (pinned in tests)."""

    def __init__(
        self,
        routes: Mapping[str, CommandRoute[Any]],
        settings: ConsumerSettings,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._routes = routes
        self._settings = settings
        self._rand = rand

    async def handle(self, messages: list[Msg]) -> list[Settlement]:
        settlements = [ACK] * len(messages)
        groups: dict[str, tuple[list[int], list[Any]]] = {}
        for position, msg in enumerate(messages):
            route = self._routes.get(msg.subject)
            if route is None:  # a newer version's command during a rolling upgrade
                log.warning("no handler for %s; redelivering later", msg.subject)
                settlements[position] = nak(self._settings.max_backoff_seconds)
                continue
            try:
                decoded = route.decode(msg)
            except UNDECODABLE:
                log.error("terminating an undecodable command on %s", msg.subject)
                settlements[position] = TERM
                continue
            positions, batch = groups.setdefault(msg.subject, ([], []))
            positions.append(position)
            batch.append(decoded)
        for subject, (positions, batch) in groups.items():
            try:
                await self._routes[subject].act(batch)
            except Exception as exc:
                deliveries = max(messages[p].metadata.num_delivered for p in positions)
                delay = redelivery_delay(deliveries, self._settings, self._rand)
                log.warning(
                    "%d command(s) on %s will be retried in %.0fs: %s",
                    len(positions),
                    subject,
                    delay,
                    exc,
                )
                for position in positions:
                    settlements[position] = nak(delay)
        return settlements


def redelivery_delay(
    deliveries: int, settings: ConsumerSettings, rand: Callable[[], float]
) -> float:
    """Seconds before a group that failed on its `deliveries`-th delivery comes back: 2 s, 4 s,
    8 s… up to `max_backoff_seconds`, jittered so that replicas failing together (the database
    down) do not all retry at once."""
    return backoff_delay(
        deliveries, base=REDELIVERY_BASE_SECONDS, cap=settings.max_backoff_seconds, rand=rand
    )


def command_consumer(
    js: JetStreamContext,
    subjects: Subjects,
    routes: Mapping[str, CommandRoute[Any]],
    settings: ConsumerSettings,
) -> PullConsumer:
    """The durable consumer of every command subject, shared by the issuer's replicas."""
    return PullConsumer(
        js,
        stream=subjects.commands_stream,
        subject=subjects.commands_wildcard,
        durable=subjects.durable("issuer"),
        handler=CommandRouter(routes, settings).handle,
        batch_size=settings.batch_size,
        ack_wait_seconds=settings.ack_wait_seconds,
    )
