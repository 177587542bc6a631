"""Human durations: `1y`, `90d`, `2w3d`, `36h`, `15m`, `30s`.

A year is 365 days and a month is not a unit (`m` is minutes), so every duration is exact and
comparable; that is what a validity period and a policy maximum need.

Every duration is positive and at most `MAX_DURATION` (1000y): validity periods and expiries are
added to dates, and an unbounded duration from a caller would overflow `datetime` (a 500)
instead of being refused as bad input.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d{1,6})([ywdhms])")
_WHOLE = re.compile(r"^(?:\d{1,6}[ywdhms])+$")
MAX_DURATION = timedelta(days=1000 * 365)
SCHEMA_PATTERN = (
    "^(?:[1-9][0-9]?y)?(?:[1-9][0-9]{0,2}w)?(?:[1-9][0-9]{0,2}d)?"
    "(?:[1-9][0-9]{0,2}h)?(?:[1-9][0-9]{0,2}m)?(?:[1-9][0-9]{0,2}s)?$"
)
"""What the OpenAPI document promises is a duration: each unit once, largest first, none zero,
at most 99y + 999 of each smaller unit (under 122 years). `parse_duration` reads more (`1d12h`
in any order, up to `MAX_DURATION`), but a JSON schema cannot add the parts up to check the
maximum, and a document that offers what the server refuses is wrong (issue 20): the schema
is the safe subset."""


def parse_duration(text: str) -> timedelta:
    """Parse `10y`, `90d`, `1d12h`; raise ValueError with the accepted form otherwise."""
    cleaned = text.strip().lower()
    if not _WHOLE.match(cleaned):
        raise ValueError(
            f"invalid duration {text!r}: a number and a unit (y, w, d, h, m, s), e.g. 90d or 1d12h"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    return _bounded(seconds, text)


def _bounded(seconds: float, shown: object) -> timedelta:
    # Judged after conversion too: a positive number below a microsecond (1e-38) would
    # otherwise become a duration of zero.
    if not seconds > 0 or not timedelta(seconds=min(seconds, 1.0)) > timedelta(0):  # NaN too
        raise ValueError(f"invalid duration {shown!r}: must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {shown!r}: must be at most 1000y")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact form in the units of `parse_duration`."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _coerce(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: a number and a unit, e.g. 90d")
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float):
        return _bounded(value, value)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "minLength": 2, "pattern": SCHEMA_PATTERN, "examples": ["90d", "12h"]}
    ),
]
"""A `timedelta` that reads and writes as `90d` in JSON."""
