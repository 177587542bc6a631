"""Retry delays: exponential, capped, with jitter.

Every retry loop (outbox relay, consumer redelivery, sync pushes, renewals) waits with this one
function. Without jitter, replicas that failed together (NATS restarting, a destination down)
retry together and hit the recovering peer in lock-step; "equal jitter" spreads them over the
upper half of the exponential step, so a retry never comes sooner than half the plain delay.
The random draw is passed in so that callers' tests can pin it.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry).

    The plain delay is `base * 2**(attempt - 1)`, at most `cap`; the result lies in
    `[plain / 2, plain]`, drawn by `rand` (a float in [0, 1)).
    """
    exponent = min(max(attempt - 1, 0), 62)
    plain = min(base * 2.0**exponent, cap)
    return plain / 2 + rand() * plain / 2
