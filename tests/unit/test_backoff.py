"""Retry delays grow, stop at the cap, and are spread by jitter within [plain/2, plain]."""

from __future__ import annotations

import pytest

from certforge.common.backoff import backoff_delay


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        pytest.param(1, 0.0, 0.5, id="ok/first-retry-lowest"),
        pytest.param(1, 0.999999, 1.0, id="ok/first-retry-highest"),
        pytest.param(3, 0.5, 3.0, id="ok/grows-exponentially"),
        pytest.param(10, 0.0, 15.0, id="ok/capped-lowest"),
        pytest.param(10_000, 1.0, 30.0, id="ok/huge-attempt-capped"),
        pytest.param(0, 1.0, 1.0, id="ok/attempt-zero-as-first"),
    ],
)
def test_backoff_delay(attempt: int, rand: float, expected: float) -> None:
    delay = backoff_delay(attempt, base=1.0, cap=30.0, rand=lambda: rand)
    assert delay == pytest.approx(expected, rel=1e-5)


def test_jitter_spreads_replicas() -> None:
    draws = iter([0.0, 0.25, 0.5, 0.75])
    delays = {backoff_delay(4, base=1.0, cap=30.0, rand=lambda: next(draws)) for _ in range(4)}
    assert len(delays) == 4
    assert all(4.0 <= d <= 8.0 for d in delays)
