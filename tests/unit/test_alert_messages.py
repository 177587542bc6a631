"""What alerts say, per channel (pure renderers of `certforge.notifier`), with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from certforge.common.alerts import AlertEvent
from certforge.notifier.alert import Alert, AlertItem, html_text, line, plain_text, summary
from certforge.notifier.channels import pagerduty, slack, webhook
from certforge.notifier.channels.email import build_message

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _item(name: str, days: float = 6.5, **fields: object) -> AlertItem:
    return AlertItem(
        kind="certificate",
        id=uuid4(),
        name=name,
        names=[name],
        profile="web",
        serial_number="0a1b",
        not_after=NOW + timedelta(days=days),
        **fields,  # type: ignore[arg-type]
    )


def _alert(items: list[AlertItem], **fields: object) -> Alert:
    defaults: dict[str, object] = {
        "id": str(uuid4()),
        "rule_id": uuid4(),
        "rule": "expiring-7d",
        "event": AlertEvent.EXPIRING,
        "application": "shop",
        "items": items,
        "dedup_key": "certforge/r/c/expiring:604800",
    }
    return Alert(**{**defaults, **fields})  # type: ignore[arg-type]


def test_one_expiring_certificate() -> None:
    alert = _alert([_item("api.shop.example")])
    assert summary(alert, NOW) == (
        "[shop] Certificate api.shop.example expires in 6 days (2026-12-09 00:00 UTC)"
    )
    assert "expires in less than a day" in line(alert, _item("x", days=0.5), NOW)
    assert "expired on" in line(alert, _item("x", days=-1), NOW)


def test_event_lines_carry_the_reason() -> None:
    alert = _alert([_item("a", detail="keyCompromise")], event=AlertEvent.REVOKED)
    assert summary(alert, NOW) == "[shop] Certificate a was revoked: keyCompromise"
    resolved = _alert([_item("a", detail="renewed")], action="resolve")
    assert line(resolved, resolved.items[0], NOW) == "Certificate a: resolved (renewed)"


def test_a_digest_counts_and_lists_every_item_in_plain_and_html() -> None:
    items = [_item(f"n{i}.example") for i in range(3)] + [_item("<b>evil</b>.example")]
    alert = _alert(items, digest=True)
    assert summary(alert, NOW) == "[shop] 4 certificates expiring soon (expiring-7d)"
    text = plain_text(alert, NOW)
    assert all(f"n{i}.example" in text for i in range(3))
    html = html_text(alert, NOW)
    assert "<b>evil</b>" not in html
    assert "&lt;b&gt;evil&lt;/b&gt;" in html
    assert html.count("<tr><td>") == 4


def test_email_has_a_plain_and_an_html_part() -> None:
    alert = _alert([_item("api.shop.example")])
    message = build_message(alert, "cf@example.com", ["a@example.com", "b@example.com"], NOW)
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Subject"] == summary(alert, NOW)
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert alert.id in message["Message-ID"]


def test_slack_blocks_stay_within_slacks_limit() -> None:
    alert = _alert([_item(f"n{i}.example") for i in range(60)], digest=True)
    body = slack.message(alert, NOW)
    assert body["text"] == summary(alert, NOW)
    assert len(body["blocks"]) == 1 + slack.MAX_ITEMS + 1 <= 50
    assert body["blocks"][-1]["elements"][0]["text"].startswith("and 15 more")


def test_pagerduty_trigger_and_resolve_shapes() -> None:
    alert = _alert([_item("api.shop.example")])
    trigger = pagerduty.event(alert, "K" * 32, "critical", NOW)
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == alert.dedup_key
    assert set(trigger["payload"]) >= {"summary", "source", "severity", "timestamp"}
    assert trigger["payload"]["severity"] == "critical"
    resolve = pagerduty.event(
        _alert(alert.items, action="resolve", dedup_key=alert.dedup_key), "K" * 32, "info", NOW
    )
    assert resolve == {
        "routing_key": "K" * 32,
        "event_action": "resolve",
        "dedup_key": alert.dedup_key,
    }


def test_webhook_body_is_a_cloudevent() -> None:
    alert = _alert([_item("api.shop.example")])
    body = webhook.cloudevent(alert, NOW)
    assert body["specversion"] == "1.0"
    assert body["id"] == alert.id
    assert body["type"] == "io.certforge.alert.expiring.v1"
    assert body["subject"] == str(alert.rule_id)
    assert body["data"]["items"][0]["name"] == "api.shop.example"
    resolved = webhook.cloudevent(_alert(alert.items, action="resolve"), NOW)
    assert resolved["type"] == "io.certforge.alert.resolved.v1"
