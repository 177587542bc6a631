"""From an event on the stream to what it may alert about. Pure: no database, no clock.

Each alert is about one subject (a certificate, a CA, a request) in one window. The window key
is what makes a repeat the same alert: `issued` happens once per certificate; a renewal failure
once per attempt of a request; a sync failure once per failure event. The expiry windows are
the scan's (`expiring:<seconds>`), so a 7d rule and a 30d rule each alert once per certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from certforge.common.alerts import AlertEvent
from certforge.common.contracts.events import (
    CertificateIssued,
    CertificateRenewalFailed,
    CertificateRenewed,
    CertificateRevoked,
    RequestFailed,
    SyncFailed,
)


@dataclass(frozen=True)
class Occurrence:
    """Something that happened which rules of `event` may alert about."""

    event: AlertEvent
    application_id: UUID
    subject_kind: str
    subject_id: UUID
    window_key: str
    detail: str | None = None
    occurred_at: datetime | None = None


_TAKEN = frozenset(
    m.event_type
    for m in (
        CertificateIssued,
        CertificateRenewed,
        CertificateRevoked,
        CertificateRenewalFailed,
        SyncFailed,
        RequestFailed,
    )
)


def occurrence(envelope: dict[str, Any]) -> Occurrence | None:
    """What an event's CloudEvent envelope may alert about; None for events no rule takes.
    Raises KeyError/ValueError/TypeError on a malformed envelope of a type rules take."""
    kind = envelope["type"]
    if kind not in _TAKEN:
        return None
    found = _occurrence(kind, envelope["data"], envelope)
    time = envelope.get("time")
    return replace(found, occurred_at=datetime.fromisoformat(time)) if time else found


def happened_before(found: Occurrence, created_at: datetime) -> bool:
    """Whether an event predates a rule: a rule speaks of what happens once it exists, not of
    the events stream's backlog (a consumer catching up, the first start of the notifier)."""
    return found.occurred_at is not None and found.occurred_at < created_at


def _occurrence(kind: str, data: dict[str, Any], envelope: dict[str, Any]) -> Occurrence:
    app = UUID(data["application_id"])
    if kind in (CertificateIssued.event_type, CertificateRenewed.event_type):
        event = AlertEvent.ISSUED if kind == CertificateIssued.event_type else AlertEvent.RENEWED
        return Occurrence(event, app, "certificate", UUID(data["certificate_id"]), event.value)
    if kind == CertificateRevoked.event_type:
        return Occurrence(
            AlertEvent.REVOKED,
            app,
            "certificate",
            UUID(data["certificate_id"]),
            "revoked",
            detail=str(data.get("reason") or "") or None,
        )
    if kind == CertificateRenewalFailed.event_type:
        return Occurrence(
            AlertEvent.RENEWAL_FAILED,
            app,
            "certificate",
            UUID(data["certificate_id"]),
            f"renewal_failed:{UUID(data['request_id'])}:{int(data['attempts'])}",
            detail=str(data["reason"]),
        )
    if kind == SyncFailed.event_type:
        return Occurrence(
            AlertEvent.SYNC_FAILED,
            app,
            "certificate",
            UUID(data["certificate_id"]),
            f"sync_failed:{UUID(data['sync_id'])}:{UUID(envelope['id'])}",
            detail=f"to {data['sync']} ({data['kind']}): {data['error']}",
        )
    # RequestFailed, the last of _TAKEN
    return Occurrence(
        AlertEvent.REQUEST_FAILED,
        app,
        "request",
        UUID(data["request_id"]),
        "request_failed",
        detail=str(data["reason"]),
    )


def resolves(envelope: dict[str, Any]) -> UUID | None:
    """The certificate whose PagerDuty incidents this event resolves: the one a renewal
    replaced, or the one revoked."""
    kind = envelope["type"]
    data = envelope["data"]
    if kind == CertificateRenewed.event_type:
        return UUID(data["renewed_from_id"])
    if kind == CertificateRevoked.event_type:
        return UUID(data["certificate_id"])
    return None


def expiry_window_key(event: AlertEvent, before: timedelta) -> str:
    """`expiring:604800` for a 7d rule: changing the window is a new window, alerting again."""
    return f"{event.value}:{int(before.total_seconds())}"


def dedup_key(rule_id: UUID, subject_id: UUID, window_key: str) -> str:
    """PagerDuty's incident key of one alert: the trigger and its resolve share it."""
    return f"certforge/{rule_id}/{subject_id}/{window_key}"


def names_of(common_name: str | None, sans: list[Any]) -> list[str]:
    """The names a rule's name pattern is matched against: the CN and every SAN value."""
    names = [common_name] if common_name else []
    names += [str(s["value"]) for s in sans if isinstance(s, dict) and "value" in s]
    return names
