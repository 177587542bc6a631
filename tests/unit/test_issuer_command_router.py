"""The issuer's batch handler, pure: how a fetched batch of commands is grouped and settled.

Real nats-py messages (never settled here: the router only says how), routes that record what
they were given, a pinned jitter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import pytest
from nats.aio.msg import Msg

from certforge.common.consumer import ACK, TERM, Settlement, nak
from certforge.issuer.consumer import (
    CommandRoute,
    CommandRouter,
    ConsumerSettings,
    redelivery_delay,
)

ISSUE = "certforge.cmd.issue"
REVOKE = "certforge.cmd.revoke"
FUTURE = "certforge.cmd.rekey"  # a command of a newer version, which this one has no route for
SETTINGS = ConsumerSettings(max_backoff_seconds=30.0)


def message(subject: str, n: int | None, *, deliveries: int = 1) -> Msg:
    """A JetStream message whose envelope carries `{"n": n}` (`None`: not JSON at all)."""
    data = b"{not json" if n is None else orjson.dumps({"data": {"n": n}})
    reply = f"$JS.ACK.CERTFORGE_COMMANDS.issuer.{deliveries}.1.1.1700000000000000000.0"
    return Msg(_client=None, subject=subject, reply=reply, data=data)  # type: ignore[arg-type]


@dataclass
class Recorder:
    """A route's `act` that records each batch it gets, failing when told to."""

    fails: bool = False
    batches: list[list[int]] = field(default_factory=list)

    async def act(self, batch: list[int]) -> None:
        self.batches.append(batch)
        if self.fails:
            raise ConnectionError("database down")


def decode(msg: Msg) -> int:
    return int(orjson.loads(msg.data)["data"]["n"])


@pytest.mark.parametrize(
    ("messages", "failing", "expected", "acted"),
    [
        pytest.param(
            [message(ISSUE, 1), message(ISSUE, 2)],
            set(),
            [ACK, ACK],
            {ISSUE: [[1, 2]]},
            id="ok/one-subject-one-act-acked",
        ),
        pytest.param(
            [message(ISSUE, 1), message(REVOKE, 2), message(ISSUE, 3)],
            set(),
            [ACK, ACK, ACK],
            {ISSUE: [[1, 3]], REVOKE: [[2]]},
            id="ok/grouped-by-subject",
        ),
        pytest.param(
            [message(ISSUE, 1), message(FUTURE, 2)],
            set(),
            [ACK, nak(30.0)],
            {ISSUE: [[1]], REVOKE: []},
            id="ok/unknown-subject-left-for-a-newer-replica",
        ),
        pytest.param(
            [message(ISSUE, None), message(ISSUE, 2)],
            set(),
            [TERM, ACK],
            {ISSUE: [[2]]},
            id="fail/undecodable-terminated-alone",
        ),
        pytest.param(
            [message(REVOKE, None)],
            set(),
            [TERM],
            {REVOKE: []},
            id="fail/nothing-decodable-no-act",
        ),
        pytest.param(
            [message(ISSUE, 1, deliveries=3), message(REVOKE, 2), message(ISSUE, 3)],
            {ISSUE},
            [nak(6.0), ACK, nak(6.0)],
            {ISSUE: [[1, 3]], REVOKE: [[2]]},
            id="fail/act-raises-group-naked-with-backoff-others-acked",
        ),
        pytest.param(
            [message(ISSUE, None), message(ISSUE, 2)],
            {ISSUE},
            [TERM, nak(1.5)],
            {ISSUE: [[2]]},
            id="fail/act-raises-undecodable-still-terminated",
        ),
    ],
)
async def test_router_settles_each_message(
    messages: list[Msg],
    failing: set[str],
    expected: list[Settlement],
    acted: dict[str, list[list[int]]],
) -> None:
    recorders = {subject: Recorder(fails=subject in failing) for subject in (ISSUE, REVOKE)}
    routes = {subject: CommandRoute(decode, r.act) for subject, r in recorders.items()}
    router = CommandRouter(routes, SETTINGS, rand=lambda: 0.5)

    assert await router.handle(messages) == expected
    for subject, batches in acted.items():
        assert recorders[subject].batches == batches


@pytest.mark.parametrize(
    ("deliveries", "rand", "expected"),
    [
        pytest.param(1, 0.0, 1.0, id="ok/first-failure-lowest"),
        pytest.param(1, 0.999999, 2.0, id="ok/first-failure-highest"),
        pytest.param(4, 1.0, 16.0, id="ok/doubles-per-delivery"),
        pytest.param(5, 0.0, 15.0, id="ok/capped-lowest"),
        pytest.param(1000, 1.0, 30.0, id="ok/capped-highest"),
    ],
)
def test_redelivery_delay(deliveries: int, rand: float, expected: float) -> None:
    assert redelivery_delay(deliveries, SETTINGS, lambda: rand) == pytest.approx(expected)
