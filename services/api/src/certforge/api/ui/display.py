"""How times and states read on screen: pure functions of a value and the clock.

Times are rendered in UTC with a relative hint ("in 12 days") on the server, so a page without
JavaScript is complete; the console's script then rewrites the absolute part in the viewer's
own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600))


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def relative(moment: datetime, now: datetime) -> str:
    """`in 12 days`, `3 hours ago`, `in 5 minutes`, `just now`."""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        return "just now"
    unit, count = next(
        ((name, int(span // size)) for name, size in _UNITS if span >= size),
        ("minute", int(span // 60)),
    )
    text = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@dataclass(frozen=True)
class Moment:
    """A time as a `<time>` element shows it."""

    iso: str
    utc: str
    hint: str


def moment(value: str | datetime | None, now: datetime) -> Moment | None:
    parsed = parse_time(value)
    if parsed is None:
        return None
    return Moment(
        iso=parsed.isoformat(),
        utc=parsed.strftime("%Y-%m-%d %H:%M UTC"),
        hint=relative(parsed, now),
    )


def certificate_state(certificate: dict[str, Any], now: datetime) -> str:
    """What should stand out about a certificate: `expired` (active but past not_after),
    `failing` (its last renewal failed), `expiring` (inside its own renewal window, renew_at),
    or `ok`. The window is the certificate's own setting, not a second threshold."""
    if certificate.get("status") != "active":
        return "ok"
    not_after = parse_time(certificate.get("not_after"))
    renew_at = parse_time(certificate.get("renew_at"))
    if not_after is not None and not_after <= now:
        return "expired"
    if certificate.get("renewal_error"):
        return "failing"
    if renew_at is not None and renew_at <= now:
        return "expiring"
    return "ok"
