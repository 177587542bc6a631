"""Durations from callers are exact, positive and bounded, so date arithmetic never overflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from certforge.common.ca_rules import plan_ca
from certforge.common.durations import MAX_DURATION, Duration, format_duration, parse_duration
from certforge.common.errors import Unprocessable

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class _Body(BaseModel):
    ttl: Duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("90d", timedelta(days=90), id="ok/days"),
        pytest.param("1d12h", timedelta(days=1, hours=12), id="ok/compound"),
        pytest.param(" 10Y ", timedelta(days=3650), id="ok/spaces-and-case"),
        pytest.param("2w", timedelta(days=14), id="ok/weeks"),
        pytest.param("1000y", MAX_DURATION, id="ok/maximum"),
        pytest.param(3600, timedelta(hours=1), id="ok/seconds-as-number"),
        pytest.param(1.5, timedelta(seconds=1.5), id="ok/float-seconds"),
    ],
)
def test_accepted(value: object, expected: timedelta) -> None:
    assert _Body(ttl=value).ttl == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("10 years", id="fail/words"),
        pytest.param("", id="fail/empty"),
        pytest.param("0d", id="fail/zero"),
        pytest.param("1001y", id="fail/over-maximum"),
        pytest.param("999999y", id="fail/would-overflow-datetime"),
        pytest.param("5x", id="fail/unit"),
        pytest.param("-5d", id="fail/negative-text"),
        pytest.param(0, id="fail/zero-number"),
        pytest.param(-86400, id="fail/negative-number"),
        pytest.param(float("inf"), id="fail/infinite"),
        pytest.param(float("nan"), id="fail/nan"),
        pytest.param(1e300, id="fail/huge-number"),
        pytest.param(True, id="fail/bool"),
        pytest.param([1], id="fail/list"),
    ],
)
def test_refused_as_validation_errors(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        _Body(ttl=value)  # type: ignore[arg-type]
    assert caught.value.errors()[0]["loc"] == ("ttl",)


def test_round_trip() -> None:
    for text in ("90d", "1y", "1d12h", "15m", "30s", "1000y"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("not_before", "validity", "field"),
    [
        pytest.param(
            datetime(9999, 6, 1, tzinfo=UTC), MAX_DURATION, "validity", id="fail/overflow"
        ),
        pytest.param(
            datetime(9999, 12, 1, tzinfo=UTC), timedelta(days=60), "validity", id="fail/after-9999"
        ),
        pytest.param(
            datetime(1900, 1, 1, tzinfo=UTC), timedelta(days=1), "not_before", id="fail/before-1950"
        ),
    ],
)
def test_ca_window_stays_within_x509_dates(
    not_before: datetime, validity: timedelta, field: str
) -> None:
    with pytest.raises(Unprocessable) as caught:
        plan_ca(
            parent=None,
            validity=validity,
            max_path_length=None,
            not_before=not_before,
            signature_hash=None,
            now=NOW,
        )
    assert [e.field for e in caught.value.errors] == [field]
