"""What every request looks up and almost never changes, kept in each api replica's memory.

Each `POST …/certificate-requests` resolves its bearer token to an identity with its roles, and
its application and profile to the profile's CA, policy and enrollment: two PostgreSQL round
trips (and the planning and joins behind them) for answers that change when an administrator
acts, a few times a day. Here they are kept, and dropped whole whenever such a change commits:

- in the replica that committed it, at once (`AccessCache.forget`, called after the commit), so
  a caller sees its own change on its next request;
- in every other replica when the `configuration.changed` event arrives (written to the outbox
  in the same transaction as the change, published right after the commit: milliseconds).

Dropping everything rather than the entries a change touches keeps the mapping from a changed
row to the cached answers it affects out of the code (a membership changes an actor; a policy,
every profile using it): the caches refill in one request each.

The cache is only trusted while this replica hears the events: while NATS is disconnected it is
bypassed, and after a reconnection (events may have been missed) it starts empty. An answer read
from PostgreSQL while a change was being announced is not kept (the generation check in `put`).
Entries also expire after `ttl` seconds, a bound on staleness should anything else go wrong.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from certforge.common.contracts.subjects import Subjects

if TYPE_CHECKING:
    from certforge.api.auth import TokenGrant
    from certforge.common.db.pool import Row

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_ENTRIES = 10_000
"""Per cache; the oldest entry goes when it is full (tokens and profiles in use, not callers)."""


class Entries(Generic[K, V]):
    """A bounded map whose entries expire, with the generation check of `AccessCache`."""

    def __init__(self, owner: AccessCache, max_entries: int = MAX_ENTRIES) -> None:
        self._owner = owner
        self._max = max_entries
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        if not self._owner.usable():
            return None
        found = self._items.get(key)
        if found is None:
            return None
        stored_at, value = found
        if self._owner.clock() - stored_at >= self._owner.ttl:
            self._items.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep `value`, read from PostgreSQL after `generation` was taken, unless a change was
        announced since (the value may predate it) or the cache is not usable."""
        if generation != self._owner.generation or not self._owner.usable():
            return
        if key not in self._items and len(self._items) >= self._max:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (self._owner.clock(), value)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class AccessCache:
    """The api replica's caches of authentication (`actors`) and request targets (`targets`).

    `ttl` 0 turns caching off. `connected` says whether the events can reach this replica, and
    `connection_epoch` changes at each reconnection (both read from the NATS client by
    `watch`; tests pass their own)."""

    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        connected: Callable[[], bool] = lambda: False,
        connection_epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.generation = 0
        self._connected = connected
        self._connection_epoch = connection_epoch
        self._seen_epoch = connection_epoch()
        self._subscription: Subscription | None = None
        self.actors: Entries[str, TokenGrant] = Entries(self)
        """Token hash -> the token's grant (`auth.authenticate`)."""
        self.targets: Entries[tuple[object, ...], Row] = Entries(self)
        """(how named, application, profile) -> the request target row (`requests._target`)."""
        self.forgotten = 0
        """How many times the caches were dropped (tests and metrics read it)."""

    def usable(self) -> bool:
        if self.ttl <= 0 or not self._connected():
            return False
        epoch = self._connection_epoch()
        if epoch != self._seen_epoch:  # reconnected: events may have been missed meanwhile
            self._seen_epoch = epoch
            self.forget()
        return True

    def forget(self) -> None:
        """Drop every cached answer, and refuse to keep answers read before now."""
        self.generation += 1
        self.forgotten += 1
        self.actors.clear()
        self.targets.clear()

    async def watch(self, nats: NatsClient, subjects: Subjects) -> None:
        """Listen for `configuration.changed` from every replica (this one included: harmless)."""
        self._connected = lambda: nats.is_connected
        self._connection_epoch = lambda: int(nats.stats.get("reconnects", 0))
        self._seen_epoch = self._connection_epoch()
        self._subscription = await nats.subscribe(subjects.configuration_changed, cb=self._on_event)

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def _on_event(self, msg: Msg) -> None:
        try:
            resources = orjson.loads(msg.data)["data"]["resources"]
        except (ValueError, KeyError, TypeError):
            resources = "?"  # still a change: forget all the same
        log.debug("configuration changed (%s): forgetting cached access", resources)
        self.forget()
