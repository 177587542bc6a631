"""Alerts delivered by the REAL notifier to real peers: an aiosmtpd SMTP server, and a local HTTP
receiver that verifies Standard Webhooks signatures with the `standardwebhooks` package and
records Slack and PagerDuty requests.

Certificates are moved through time by writing their `not_after` (the notifier's scan reads it),
never by waiting.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from admin_kit import ok
from alerts_kit import (
    Receiver,
    SmtpInbox,
    alerts_url,
    create_alert,
    deliveries,
    delivery_rows,
    eventually,
    firings,
    notifier_options,
    routing_key,
    settle,
    utcnow,
    wait_deliveries,
    webhook_secret,
)
from certforge.notifier.main import build
from certforge.notifier.scan import ExpiryScanner
from certforge.notifier.settings import NotifierSettings
from issuance_kit import WAIT, Enrollment, enroll, issue
from lifecycle_kit import set_certificate, stream_messages

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
async def e(admin: httpx.AsyncClient, notifier: object) -> Enrollment:
    return await enroll(admin)


def _all(status: str, count: int) -> Any:
    return lambda ds: len(ds) == count and all(d["status"] == status for d in ds)


async def test_an_expiry_alert_reaches_email_slack_and_a_signed_webhook(
    admin: httpx.AsyncClient,
    e: Enrollment,
    smtp_server: SmtpInbox,
    alert_receiver: Receiver,
) -> None:
    issued = await issue(admin, e, common_name="mail.example.com")
    certificate = issued["certificate"]
    secret = webhook_secret()
    hook_url, hook = alert_receiver.endpoint(secret=secret)
    slack_url, slack = alert_receiver.endpoint()
    address = f"oncall-{certificate['id'][:8]}@example.com"
    alert = await create_alert(
        admin,
        e.app,
        "expiring",
        [
            {"type": "email", "to": [address]},
            {"type": "webhook", "url": hook_url, "secret": secret},
            {"type": "slack", "url": slack_url},
        ],
        before="40d",  # the 30-day certificate is inside the window at once
        filters={"name": "mail.example.com"},
    )
    done = await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 3))
    assert {d["channel_type"] for d in done} == {"email", "webhook", "slack"}
    assert all(d["subject_id"] == certificate["id"] for d in done)
    assert all(d["window"] == f"expiring:{40 * 86400}" for d in done)

    # Email: one message, a plain and an HTML part, both naming the certificate.
    mails = smtp_server.to(address)
    assert len(mails) == 1
    mail = mails[0]
    assert "mail.example.com" in mail["Subject"]
    assert "expires in" in mail["Subject"]
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert "mail.example.com" in plain.get_content()
    assert "<table>" in html.get_content()
    assert "mail.example.com" in html.get_content()

    # Webhook: verified by the reference library, a CloudEvents 1.0 body.
    assert len(hook.received) == 1
    request = hook.received[0]
    assert request["verified"] is True
    assert request["headers"]["webhook-id"] == next(
        d["id"] for d in done if d["channel_type"] == "webhook"
    )
    assert request["headers"]["Content-Type"] == "application/cloudevents+json"
    event = request["body"]
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.certforge.alert.expiring.v1"
    assert event["subject"] == alert["id"]
    assert event["data"]["application"] == e.app
    assert [i["id"] for i in event["data"]["items"]] == [certificate["id"]]
    assert event["data"]["items"][0]["not_after"].startswith(certificate["not_after"][:19])

    # Slack: text plus blocks (header, a section per certificate, context).
    assert len(slack.received) == 1
    message = slack.received[0]["body"]
    assert "mail.example.com" in message["text"]
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "context"]
    assert "mail.example.com" in message["blocks"][1]["text"]["text"]
    assert message["blocks"][1]["text"]["type"] == "mrkdwn"


async def test_crossing_the_7_day_window_alerts_once_across_scans_and_a_restart(
    admin: httpx.AsyncClient,
    e: Enrollment,
    api_app: Any,
    notifier: Any,
    smtp_server: SmtpInbox,
    alert_receiver: Receiver,
    backends: Any,
) -> None:
    certificate = (await issue(admin, e, common_name="week.example.com"))["certificate"]
    hook_url, hook = alert_receiver.endpoint(secret=(secret := webhook_secret()))
    alert = await create_alert(
        admin,
        e.app,
        "expiring",
        [{"type": "webhook", "url": hook_url, "secret": secret}],
        before="7d",
        filters={"name": "week.example.com"},
    )
    await settle(2.5)  # two scans: 30 days left is outside the window
    assert await firings(api_app, alert["id"]) == []
    assert hook.received == []

    await set_certificate(api_app, certificate["id"], not_after=utcnow() + timedelta(days=6))
    await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 1))

    # Many more scans: by the running notifier, and by scanners of their own (other replicas).
    scanner = ExpiryScanner(notifier.sessions, notifier_options(smtp_server, alert_receiver))
    for _ in range(5):
        assert await scanner.scan() == 0
    # A restart: a second notifier process starts (its scan and consumer run), then stops.
    second = build(NotifierSettings.load(notifier=notifier_options(smtp_server, alert_receiver)))
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    task = asyncio.create_task(second.run(on_started, handle_signals=False))
    await asyncio.wait_for(started.wait(), timeout=30)
    await settle(2.5)
    second.stop()
    await asyncio.wait_for(task, timeout=30)
    await settle(1.5)

    assert len(await firings(api_app, alert["id"])) == 1
    assert len(await delivery_rows(api_app, alert["id"])) == 1
    assert len(hook.received) == 1
    assert hook.received[0]["verified"] is True


async def test_a_digest_lists_every_matching_certificate_in_one_message(
    admin: httpx.AsyncClient, e: Enrollment, alert_receiver: Receiver, smtp_server: SmtpInbox
) -> None:
    names = [f"d{i}-digest.example.com" for i in range(3)]
    matching = [(await issue(admin, e, common_name=n))["certificate"] for n in names]
    await issue(admin, e, common_name="other.example.com")
    secret = webhook_secret()
    hook_url, hook = alert_receiver.endpoint(secret=secret)
    address = "digest@example.com"
    alert = await create_alert(
        admin,
        e.app,
        "expiring",
        [
            {"type": "webhook", "url": hook_url, "secret": secret},
            {"type": "email", "to": [address]},
        ],
        before="60d",
        filters={"name": "*-digest.example.com"},
        digest=True,
    )
    await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 6))
    await settle()
    assert len(hook.received) == 1
    data = hook.received[0]["body"]["data"]
    assert data["digest"] is True
    assert sorted(i["id"] for i in data["items"]) == sorted(c["id"] for c in matching)
    assert "3 certificates expiring soon" in data["summary"]
    mails = smtp_server.to(address)
    assert len(mails) == 1
    text = mails[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert all(n in text for n in names)
    assert "other.example.com" not in text


async def test_a_failing_channel_retries_then_shows_failed_and_announces_it(
    admin: httpx.AsyncClient, e: Enrollment, api_app: Any, alert_receiver: Receiver
) -> None:
    hook_url, hook = alert_receiver.endpoint(status=503)
    ok_url, fine = alert_receiver.endpoint()
    alert = await create_alert(
        admin,
        e.app,
        "issued",
        [{"type": "slack", "url": hook_url}, {"type": "slack", "url": ok_url}],
    )
    certificate = (await issue(admin, e, common_name="fail.example.com"))["certificate"]
    done = await wait_deliveries(
        admin,
        e.app,
        alert["id"],
        lambda ds: len(ds) == 2 and {d["status"] for d in ds} == {"failed", "delivered"},
    )
    failed = next(d for d in done if d["status"] == "failed")
    assert failed["attempts"] == 3  # max_attempts of the tests' notifier
    assert "answered 503" in failed["last_error"]
    assert len(hook.received) == 3
    assert len(fine.received) == 1
    assert ok(
        await admin.get(
            f"{alerts_url(e.app)}/{alert['id']}/deliveries", params={"status": "failed"}
        )
    )["items"] == [failed]

    context = api_app.state.certforge

    async def announced() -> list[dict[str, Any]]:
        events = await stream_messages(
            context.nats.jetstream(),
            context.subjects.events_stream,
            context.subjects.event(e.app, "alert.delivery_failed"),
        )
        return [x for x in events if x["data"]["alert_id"] == alert["id"]]

    event = (await eventually(announced, what="alert.delivery_failed"))[0]
    assert event["type"] == "io.certforge.alert.delivery_failed.v1"
    assert event["data"]["deliveries"] == [failed["id"]]
    assert event["data"]["subjects"] == [certificate["id"]]
    assert event["data"]["attempts"] == 3
    assert hook_url not in str(event)


async def test_a_refusing_peer_fails_at_once(
    admin: httpx.AsyncClient, e: Enrollment, alert_receiver: Receiver
) -> None:
    url, endpoint = alert_receiver.endpoint(status=404)
    alert = await create_alert(admin, e.app, "issued", [{"type": "slack", "url": url}])
    await issue(admin, e, common_name="refused.example.com")
    done = await wait_deliveries(admin, e.app, alert["id"], _all("failed", 1))
    assert done[0]["attempts"] == 1
    assert len(endpoint.received) == 1


async def test_pagerduty_triggers_then_resolves_on_renewal_and_on_revocation(
    admin: httpx.AsyncClient, e: Enrollment, alert_receiver: Receiver, api_app: Any
) -> None:
    key = routing_key()
    renewed_cert = (await issue(admin, e, common_name="pd1.example.com"))["certificate"]
    revoked_cert = (await issue(admin, e, common_name="pd2.example.com"))["certificate"]
    alert = await create_alert(
        admin,
        e.app,
        "expiring",
        [{"type": "pagerduty", "routing_key": key, "severity": "critical"}],
        before="40d",
        filters={"name": "pd*.example.com"},
        digest=True,  # PagerDuty still gets one incident per certificate
    )
    await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 2))
    triggers = alert_receiver.pagerduty_events(key)
    assert len(triggers) == 2
    for trigger in triggers:
        assert trigger["event_action"] == "trigger"
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["source"] == f"certforge/{e.app}"
        assert trigger["payload"]["summary"].startswith(f"[{e.app}] Certificate pd")
        assert trigger["dedup_key"]
    by_name = {t["payload"]["component"]: t["dedup_key"] for t in triggers}

    r = await admin.post(f"{e.certificates}/{renewed_cert['id']}/renew", headers=WAIT)
    assert r.status_code == 201, r.text
    ok(await admin.post(f"{e.certificates}/{revoked_cert['id']}/revoke", json={}))

    async def resolved() -> list[dict[str, Any]] | None:
        events = [x for x in alert_receiver.pagerduty_events(key) if x["event_action"] == "resolve"]
        return events if len(events) == 2 else None

    resolves = await eventually(resolved, what="two resolves")
    assert {x["dedup_key"] for x in resolves} == set(by_name.values())
    assert all(set(x) == {"routing_key", "event_action", "dedup_key"} for x in resolves)
    listed = await deliveries(admin, e.app, alert["id"])
    assert sorted(d["action"] for d in listed) == ["resolve", "resolve", "trigger", "trigger"]


async def test_event_alerts_and_the_test_endpoint(
    admin: httpx.AsyncClient, e: Enrollment, alert_receiver: Receiver, smtp_server: SmtpInbox
) -> None:
    secret = webhook_secret()
    hook_url, hook = alert_receiver.endpoint(secret=secret)
    alert = await create_alert(
        admin,
        e.app,
        "revoked",
        [{"type": "webhook", "url": hook_url, "secret": secret}],
        filters={"profiles": [e.profile], "tags": {"team": "payments"}},
    )
    tagged = (await issue(admin, e, common_name="rv.example.com", metadata={"team": "payments"}))[
        "certificate"
    ]
    untagged = (await issue(admin, e, common_name="rv2.example.com"))["certificate"]
    for c in (tagged, untagged):
        ok(await admin.post(f"{e.certificates}/{c['id']}/revoke", json={"reason": "keyCompromise"}))
    await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 1))
    await settle()
    assert len(hook.received) == 1
    data = hook.received[0]["body"]["data"]
    assert hook.received[0]["body"]["type"] == "io.certforge.alert.revoked.v1"
    assert data["items"][0]["id"] == tagged["id"]
    assert data["items"][0]["detail"]  # the revocation reason

    # The test endpoint sends a sample through every channel, and records nothing.
    address = "sample@example.com"
    ok(
        await admin.patch(
            f"{alerts_url(e.app)}/{alert['id']}",
            json={
                "channels": [
                    {"id": alert["channels"][0]["id"]},
                    {"type": "email", "to": [address]},
                    {"type": "slack", "url": f"{alert_receiver.url}/e/missing"},
                ]
            },
        )
    )
    result = ok(await admin.post(f"{alerts_url(e.app)}/{alert['id']}/test"))
    assert result["ok"] is False
    assert [c["ok"] for c in result["channels"]] == [True, True, False]
    assert "404" in result["channels"][2]["detail"]
    assert len(hook.received) == 2
    assert hook.received[1]["verified"] is True
    assert "certforge-test-alert.example" in str(hook.received[1]["body"])
    assert len(smtp_server.to(address)) == 1
    assert len(await deliveries(admin, e.app, alert["id"])) == 1


async def test_an_event_digest_gathers_what_happens_within_its_wait(
    admin: httpx.AsyncClient, e: Enrollment, alert_receiver: Receiver
) -> None:
    secret = webhook_secret()
    hook_url, hook = alert_receiver.endpoint(secret=secret)
    alert = await create_alert(
        admin,
        e.app,
        "issued",
        [{"type": "webhook", "url": hook_url, "secret": secret}],
        filters={"name": "batch*.example.com"},
        digest=True,
    )
    # Issued together: their events reach the notifier within its digest wait (3 s in tests).
    issued = [
        r["certificate"]
        for r in await asyncio.gather(
            *(issue(admin, e, common_name=f"batch{i}.example.com") for i in range(3))
        )
    ]
    await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 3))
    await settle()
    assert len(hook.received) == 1
    data = hook.received[0]["body"]["data"]
    assert sorted(i["id"] for i in data["items"]) == sorted(c["id"] for c in issued)
    assert data["summary"] == f"[{e.app}] 3 issued alerts ({alert['name']})"


async def test_ca_expiring_alerts_about_the_applications_issuing_ca(
    admin: httpx.AsyncClient, e: Enrollment, alert_receiver: Receiver
) -> None:
    url, endpoint = alert_receiver.endpoint()
    alert = await create_alert(
        admin,
        e.app,
        "ca_expiring",
        [{"type": "slack", "url": url}],
        before="2000d",  # the issuing CA is valid for 5 years
        filters={"profiles": [e.profile]},
    )
    [delivered] = await wait_deliveries(admin, e.app, alert["id"], _all("delivered", 1))
    assert delivered["subject_kind"] == "ca"
    assert delivered["subject_id"] == e.issuing["id"]
    await settle()
    assert len(endpoint.received) == 1
    assert e.issuing["name"] in endpoint.received[0]["body"]["text"]
