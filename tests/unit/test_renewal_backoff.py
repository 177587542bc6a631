"""A failed renewal's retry delay: growing, capped at a day, spread by jitter so that the
certificates of a mass failure do not all come due again in the same scan."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certforge.issuer.issuing import renewal_backoff


@pytest.mark.parametrize(
    ("attempts", "rand", "expected"),
    [
        pytest.param(1, 0.0, timedelta(seconds=30), id="ok/first-retry-lowest"),
        pytest.param(1, 0.999999, timedelta(minutes=1), id="ok/first-retry-highest"),
        pytest.param(3, 0.5, timedelta(minutes=3), id="ok/grows"),
        pytest.param(40, 0.0, timedelta(hours=12), id="ok/capped-at-a-day-lowest"),
    ],
)
def test_renewal_backoff_has_jitter(attempts: int, rand: float, expected: timedelta) -> None:
    delay = renewal_backoff(attempts, lambda: rand)
    assert abs(delay - expected) < timedelta(milliseconds=1)


def test_renewal_backoff_spreads_a_mass_failure() -> None:
    draws = iter([0.1, 0.4, 0.7])
    delays = {renewal_backoff(2, lambda: next(draws)) for _ in range(3)}
    assert len(delays) == 3
    assert all(timedelta(minutes=1) <= d <= timedelta(minutes=2) for d in delays)
