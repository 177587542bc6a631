"""The alert API with the REAL notifier answering: create, read, update, delete; secrets sealed
in the row and never returned; every bad input a precise 422 naming the field; tenancy (another
application's alerts are 404) and roles (auditors read, only application admins change).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from admin_kit import ClientFor, every, ok, problem, uid
from alerts_kit import alerts_url, create_alert, routing_key, rule_row, webhook_secret
from certforge.common.alerts import secrets_aad
from certforge.common.crypto.envelope import KeyRing
from harness import Backends
from issuance_kit import Enrollment, audit_events, enroll, member

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SLACK = "https://hooks.slack.example/services/T0/B0/never-shown-slack-url"


@pytest.fixture(scope="module")
async def e(admin: httpx.AsyncClient, notifier: object) -> Enrollment:
    return await enroll(admin)


def _channels(secret: str, key: str) -> list[dict[str, Any]]:
    return [
        {"type": "webhook", "url": "https://hooks.example.com/certforge", "secret": secret},
        {"type": "slack", "url": SLACK},
        {"type": "email", "to": ["oncall@example.com"]},
        {"type": "pagerduty", "routing_key": key, "severity": "critical"},
    ]


async def test_an_alert_is_stored_with_its_secrets_sealed_and_never_returned(
    admin: httpx.AsyncClient, e: Enrollment, api_app: Any, backends: Backends
) -> None:
    secret, key = webhook_secret(), routing_key()
    created = await create_alert(
        admin,
        e.app,
        "expiring",
        _channels(secret, key),
        before="7d",
        filters={"profiles": [e.profile], "name": "*.example.com", "tags": {"team": "shop"}},
        digest=True,
    )
    assert created["before"] == "7d"
    assert created["digest"] is True
    assert created["filters"]["profiles"] == [e.profile]
    shown = created["channels"]
    assert [c["type"] for c in shown] == ["webhook", "slack", "email", "pagerduty"]
    assert shown[0]["secret"] == {"configured": True}
    assert shown[0]["url"] == "https://hooks.example.com/certforge"
    assert shown[1]["url"] == {"configured": True}
    assert shown[2]["to"] == ["oncall@example.com"]
    assert shown[3]["routing_key"] == {"configured": True}
    assert shown[3]["severity"] == "critical"
    assert all(len(c["id"]) == 36 for c in shown)

    for answer in (
        created,
        ok(await admin.get(f"{alerts_url(e.app)}/{created['id']}")),
        await every(admin, alerts_url(e.app)),
    ):
        text = str(answer)
        assert all(s not in text for s in (secret, key, SLACK)), answer

    row = await rule_row(api_app, created["id"])
    stored = str(row.channels)
    assert all(s not in stored for s in (secret, key, SLACK))
    assert row.encrypted_secrets is not None
    sealed = bytes(row.encrypted_secrets)
    assert all(s.encode() not in sealed for s in (secret, key, SLACK))
    opened = KeyRing.parse(backends.leaf_keks).decrypt(sealed, secrets_aad(row.id))
    assert all(s.encode() in opened for s in (secret, key, SLACK))

    entries = await audit_events(api_app, action="alert.create", resource_id=created["id"])
    assert len(entries) == 1
    assert secret not in str(entries[0].details)


async def test_update_keeps_stored_secrets_for_a_channel_named_by_id(
    admin: httpx.AsyncClient, e: Enrollment, api_app: Any, backends: Backends
) -> None:
    secret = webhook_secret()
    created = await create_alert(
        admin,
        e.app,
        "issued",
        [{"type": "webhook", "url": "https://hooks.example.com/a", "secret": secret}],
    )
    url = f"{alerts_url(e.app)}/{created['id']}"
    webhook_id = created["channels"][0]["id"]
    patched = ok(
        await admin.patch(
            url,
            json={
                "channels": [
                    {"id": webhook_id, "url": "https://hooks.example.com/b"},
                    {"type": "email", "to": ["team@example.com"]},
                ],
                "enabled": False,
            },
        )
    )
    assert patched["enabled"] is False
    assert patched["channels"][0] == {
        "id": webhook_id,
        "type": "webhook",
        "url": "https://hooks.example.com/b",
        "secret": {"configured": True},
    }
    row = await rule_row(api_app, created["id"])
    assert row.encrypted_secrets is not None
    opened = KeyRing.parse(backends.leaf_keks).decrypt(row.encrypted_secrets, secrets_aad(row.id))
    assert secret.encode() in opened

    problem(
        await admin.patch(url, json={"channels": [{"id": webhook_id}, {"id": webhook_id}]}),
        422,
        "channels.1.id",
    )
    problem(
        await admin.patch(url, json={"channels": [{"id": created["id"]}]}), 422, "channels.0.id"
    )
    renamed = ok(await admin.patch(url, json={"name": "renamed-" + uid()}))
    assert renamed["channels"] == patched["channels"]

    assert (await admin.delete(url)).status_code == 204
    problem(await admin.get(url), 404, "alert_id")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"event": "expired_soon"}, "event", id="fail/unknown-event"),
        pytest.param({"before": "7x"}, "before", id="fail/invalid-window"),
        pytest.param({"before": "0d"}, "before", id="fail/zero-window"),
        pytest.param({"before": None}, "before", id="fail/expiring-without-window"),
        pytest.param({"event": "issued"}, "before", id="fail/window-on-issued"),
        pytest.param({"channels": []}, "channels", id="fail/no-channel"),
        pytest.param(
            {"channels": [{"type": "email", "to": [f"a{i}@example.com"]} for i in range(11)]},
            "channels",
            id="fail/eleven-channels",
        ),
        pytest.param({"channels": [{"type": "fax"}]}, "channels.0.type", id="fail/channel-type"),
        pytest.param(
            {"channels": [{"type": "webhook", "url": "not a url", "secret": webhook_secret()}]},
            "channels.0.url",
            id="fail/webhook-url",
        ),
        pytest.param(
            {"channels": [{"type": "webhook", "url": "https://h.example", "secret": "short"}]},
            "channels.0.secret",
            id="fail/webhook-secret",
        ),
        pytest.param(
            {"channels": [{"type": "email", "to": ["not-an-address"]}]},
            "channels.0.to.0",
            id="fail/email-address",
        ),
        pytest.param(
            {"channels": [{"type": "pagerduty", "routing_key": "x"}]},
            "channels.0.routing_key",
            id="fail/routing-key",
        ),
        pytest.param(
            {"channels": [{"type": "slack", "url": SLACK, "token": "x"}]},
            "channels.0.token",
            id="fail/unknown-channel-field",
        ),
        pytest.param({"filters": {"name": "  "}}, "filters.name", id="fail/empty-name-pattern"),
        pytest.param({"filters": {"profiles": ["nope"]}}, "filters.profiles.0", id="fail/profile"),
        pytest.param({"filters": {"owner": "x"}}, "filters.owner", id="fail/unknown-filter"),
        pytest.param(
            {"event": "ca_expiring", "filters": {"tags": {"a": "b"}}},
            "filters.tags",
            id="fail/tags-on-ca-expiring",
        ),
        pytest.param({"name": ""}, "name", id="fail/empty-name"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    admin: httpx.AsyncClient, e: Enrollment, changes: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {
        "name": uid("bad"),
        "event": "expiring",
        "before": "7d",
        "channels": [{"type": "slack", "url": SLACK}],
        **changes,
    }
    if body["before"] is None:
        del body["before"]
    problem(await admin.post(alerts_url(e.app), json=body), 422, field)
    listed = await every(admin, alerts_url(e.app))
    assert body["name"] not in [a["name"] for a in listed]


async def test_a_duplicate_name_is_a_409(admin: httpx.AsyncClient, e: Enrollment) -> None:
    created = await create_alert(admin, e.app, "revoked", [{"type": "slack", "url": SLACK}])
    again = await admin.post(
        alerts_url(e.app),
        json={
            "name": created["name"],
            "event": "issued",
            "channels": [{"type": "slack", "url": SLACK}],
        },
    )
    problem(again, 409, "name")


async def test_tenancy_and_roles(
    admin: httpx.AsyncClient, client_for: ClientFor, e: Enrollment
) -> None:
    created = await create_alert(admin, e.app, "revoked", [{"type": "slack", "url": SLACK}])
    url = f"{alerts_url(e.app)}/{created['id']}"
    other = await enroll(admin)
    stranger = await member(admin, client_for, other.app, "application-admin")
    problem(await stranger.get(url), 404)
    problem(await stranger.get(alerts_url(e.app)), 404)
    problem(await stranger.delete(url), 404)
    # The same alert id under the stranger's own application is not found either.
    problem(await stranger.get(f"{alerts_url(other.app)}/{created['id']}"), 404, "alert_id")
    problem(await stranger.get(f"{alerts_url(other.app)}/{created['id']}/deliveries"), 404)

    auditor = await member(admin, client_for, e.app, "auditor")
    assert ok(await auditor.get(url))["id"] == created["id"]
    assert ok(await auditor.get(f"{url}/deliveries"))["items"] == []
    problem(await auditor.patch(url, json={"enabled": False}), 403)
    problem(
        await auditor.post(
            alerts_url(e.app),
            json={"name": uid(), "event": "issued", "channels": [{"type": "slack", "url": SLACK}]},
        ),
        403,
    )
    problem(await auditor.post(f"{url}/test"), 403)
    operator = await member(admin, client_for, e.app, "operator")
    problem(await operator.delete(url), 403)
