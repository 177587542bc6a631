"""What an alert says, independent of the channel that carries it. Pure: the clock is passed in.

An `Alert` is one message: one item (a certificate, a CA or a request) or, for a digest rule,
every item of its window. Each channel renders it in its own shape (CloudEvent, blocks, mail
parts, PagerDuty summary) from the same summary and lines, so they always say the same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from certforge.common.alerts import AlertEvent
from certforge.common.db.tables import Certificate
from certforge.notifier.matching import names_of


class AlertItem(BaseModel):
    """What an alert says about one subject, fixed when the alert fired (stored with each
    delivery, so a retry sends what was true then)."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["certificate", "ca", "request"]
    id: UUID
    name: str
    names: list[str] = []
    profile: str | None = None
    serial_number: str | None = None
    not_after: datetime | None = None
    detail: str | None = None

    @classmethod
    def of_certificate(cls, certificate: Certificate, profile: str) -> AlertItem:
        """A certificate as an alert names it: its common name, else its first SAN."""
        names = names_of(certificate.common_name, certificate.sans)
        return cls(
            kind="certificate",
            id=certificate.id,
            name=certificate.common_name or (names[0] if names else str(certificate.id)),
            names=names,
            profile=profile,
            serial_number=certificate.serial_number,
            not_after=certificate.not_after,
        )


@dataclass(frozen=True)
class Alert:
    id: str
    """The message id (webhook-id, CloudEvent id): the delivery's id, stable across retries."""
    rule_id: UUID
    rule: str
    event: AlertEvent
    application: str
    items: list[AlertItem]
    action: Literal["trigger", "resolve"] = "trigger"
    digest: bool = False
    dedup_key: str | None = None
    occurred_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_VERB = {
    AlertEvent.ISSUED: "was issued",
    AlertEvent.RENEWED: "was renewed",
    AlertEvent.REVOKED: "was revoked",
    AlertEvent.RENEWAL_FAILED: "could not be renewed",
    AlertEvent.SYNC_FAILED: "could not be synced",
    AlertEvent.REQUEST_FAILED: "failed",
}


def _left(not_after: datetime | None, now: datetime) -> str:
    if not_after is None:
        return ""
    seconds = (not_after - now).total_seconds()
    if seconds <= 0:
        return f"expired on {not_after:%Y-%m-%d %H:%M} UTC"
    days = int(seconds // 86400)
    span = f"{days} day{'s' if days != 1 else ''}" if days else "less than a day"
    return f"expires in {span} ({not_after:%Y-%m-%d %H:%M} UTC)"


def _noun(item: AlertItem) -> str:
    return {"certificate": "Certificate", "ca": "CA", "request": "Certificate request"}[item.kind]


def line(alert: Alert, item: AlertItem, now: datetime) -> str:
    """One sentence about one item."""
    subject = f"{_noun(item)} {item.name}"
    if alert.action == "resolve":
        return f"{subject}: resolved ({item.detail or 'renewed or revoked'})"
    if alert.event in (AlertEvent.EXPIRING, AlertEvent.CA_EXPIRING):
        return f"{subject} {_left(item.not_after, now)}"
    text = f"{subject} {_VERB[alert.event]}"
    return f"{text}: {item.detail}" if item.detail else text


def summary(alert: Alert, now: datetime) -> str:
    """The title: the one line of a single alert, or a count for a digest."""
    if len(alert.items) == 1 and not alert.digest:
        return f"[{alert.application}] {line(alert, alert.items[0], now)}"
    count = len(alert.items)
    what = {
        AlertEvent.EXPIRING: "certificates expiring soon",
        AlertEvent.CA_EXPIRING: "CAs expiring soon",
    }.get(alert.event, f"{alert.event.value.replace('_', ' ')} alerts")
    return f"[{alert.application}] {count} {what} ({alert.rule})"


def plain_text(alert: Alert, now: datetime) -> str:
    lines = [summary(alert, now), ""]
    lines += [f"- {line(alert, item, now)}" for item in alert.items]
    lines += [
        "",
        f"Alert rule: {alert.rule} ({alert.event.value}), application {alert.application}",
    ]
    return "\n".join(lines) + "\n"


def html_text(alert: Alert, now: datetime) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(line(alert, i, now))}</td>"
        f"<td>{html.escape(i.profile or '')}</td>"
        f"<td>{html.escape(i.serial_number or '')}</td></tr>"
        for i in alert.items
    )
    return (
        "<!doctype html><html><body>"
        f"<h2>{html.escape(summary(alert, now))}</h2>"
        "<table><thead><tr><th>What</th><th>Profile</th><th>Serial</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        f"<p>Alert rule <b>{html.escape(alert.rule)}</b> ({alert.event.value}), application "
        f"<b>{html.escape(alert.application)}</b>.</p>"
        "</body></html>"
    )
