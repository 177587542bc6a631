"""The api replica's access cache (`certforge.api.access_cache`): when it may answer, and when an
answer must not be kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from certforge.api.access_cache import AccessCache, Entries


@dataclass
class World:
    now: float = 0.0
    connected: bool = True
    epoch: int = 0


def cache(world: World, ttl: float = 60.0) -> AccessCache:
    return AccessCache(
        ttl,
        clock=lambda: world.now,
        connected=lambda: world.connected,
        connection_epoch=lambda: world.epoch,
    )


def targets(c: AccessCache) -> Entries[tuple[object, ...], Any]:
    return c.targets


def test_ok_an_answer_is_kept_until_it_expires() -> None:
    world = World()
    c = cache(world)
    targets(c).put(("k",), "row", c.generation)
    world.now = 59.9
    assert targets(c).get(("k",)) == "row"
    world.now = 60.0
    assert targets(c).get(("k",)) is None


def test_fail_an_answer_read_before_a_change_is_not_kept() -> None:
    world = World()
    c = cache(world)
    generation = c.generation  # a request starts reading PostgreSQL…
    c.forget()  # …a change is announced meanwhile…
    targets(c).put(("k",), "stale", generation)  # …so what it read may predate the change
    assert targets(c).get(("k",)) is None


def test_ok_forget_drops_both_caches() -> None:
    world = World()
    c = cache(world)
    targets(c).put(("k",), "row", c.generation)
    c.actors.put("hash", object(), c.generation)  # type: ignore[arg-type]
    c.forget()
    assert targets(c).get(("k",)) is None
    assert c.actors.get("hash") is None


@pytest.mark.parametrize(
    ("ttl", "connected"),
    [pytest.param(0, True, id="fail/turned-off"), pytest.param(60, False, id="fail/no-events")],
)
def test_fail_nothing_is_answered_or_kept_when_changes_cannot_be_heard(
    ttl: float, connected: bool
) -> None:
    world = World(connected=connected)
    c = cache(world, ttl)
    targets(c).put(("k",), "row", c.generation)
    world.connected = True
    assert targets(c).get(("k",)) is None


def test_fail_after_a_reconnection_everything_is_forgotten() -> None:
    """Events published while the connection was down never reach this replica."""
    world = World()
    c = cache(world)
    targets(c).put(("k",), "row", c.generation)
    world.epoch += 1
    assert targets(c).get(("k",)) is None
    targets(c).put(("k",), "row", c.generation)
    assert targets(c).get(("k",)) == "row"


def test_ok_a_full_cache_drops_its_oldest_entry() -> None:
    world = World()
    c = cache(world)
    small: Entries[str, int] = Entries(c, max_entries=2)
    for i, key in enumerate("abc"):
        small.put(key, i, c.generation)
    assert [small.get(k) for k in "abc"] == [None, 1, 2]
