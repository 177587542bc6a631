"""The audit log: every change and every refused change, filtered and paged, per application."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_identity,
    create_policy,
    create_profile,
    create_root,
    ok,
    policy_body,
    problem,
    put_member,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AUDIT = f"{API}/audit-events"


async def _events(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    page = ok(await client.get(AUDIT, params=params))
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_changes_are_recorded(admin: httpx.AsyncClient) -> None:
    me = ok(await admin.get(f"{API}/me"))
    root = await create_root(admin)
    policy = await create_policy(admin)
    profile = await create_profile(admin, root["id"], policy["id"])
    app = await create_application(admin)
    ok(await admin.put(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"), 201)
    ok(await admin.post(f"{API}/cas/{root['id']}/disable"))

    expected = [
        ("ca.create", "ca", root["id"], None, 201),
        ("policy.create", "policy", policy["id"], None, 201),
        ("profile.create", "profile", profile["id"], None, 201),
        ("application.create", "application", app["id"], app["id"], 201),
        ("application.profile.attach", "attachment", profile["id"], app["id"], 201),
        ("ca.disable", "ca", root["id"], None, 200),
    ]
    for action, resource_type, resource_id, application_id, status in expected:
        found = await _events(admin, action=action, resource_id=resource_id)
        assert len(found) == 1, (action, found)
        event = found[0]
        assert event["outcome"] == "success"
        assert event["actor_id"] == me["id"]
        assert event["actor_name"] == me["name"]
        assert event["resource_type"] == resource_type
        assert event["application_id"] == application_id
        assert event["status_code"] == status
        assert event["request_id"]
        assert event["occurred_at"]
    # Details are useful but never secret.
    created = (await _events(admin, action="ca.create", resource_id=root["id"]))[0]
    assert created["details"]["name"] == root["name"]


async def test_token_secrets_never_reach_the_log(admin: httpx.AsyncClient) -> None:
    identity = await create_identity(admin)
    events = await _events(admin, resource_id=identity["id"])
    assert [e["action"] for e in events] == ["identity.create"]
    assert identity["token"] not in str(events)


async def test_refusals_are_recorded(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, client_for: ClientFor
) -> None:
    policy = await create_policy(admin)
    someone = await create_identity(admin)
    r = await admin.post(f"{API}/policies", json=policy_body(name=policy["name"]))
    conflict = problem(r, 409, "name")
    r = await admin.post(f"{API}/policies", json=policy_body(max_validity="forever"))
    invalid = problem(r, 422, "max_validity")
    r = await client_for(someone["token"]).post(f"{API}/policies", json=policy_body())
    forbidden = problem(r, 403)
    r = await anonymous.post(f"{API}/policies", json=policy_body())
    unauthenticated = problem(r, 401)

    failed = {
        e["request_id"]: e
        for e in await _events(admin, action="policy.create", outcome="failed", limit=200)
    }
    denied = {
        e["request_id"]: e
        for e in await _events(admin, action="policy.create", outcome="denied", limit=200)
    }
    assert failed[conflict["request_id"]]["status_code"] == 409
    assert failed[invalid["request_id"]]["status_code"] == 422
    assert "max_validity" in failed[invalid["request_id"]]["details"]["detail"]
    assert denied[forbidden["request_id"]]["status_code"] == 403
    assert denied[forbidden["request_id"]]["actor_id"] == someone["id"]
    assert denied[unauthenticated["request_id"]]["status_code"] == 401
    assert denied[unauthenticated["request_id"]]["actor_id"] is None


async def test_filters_and_cursor_pagination(admin: httpx.AsyncClient) -> None:
    app = await create_application(admin)
    members = [await create_identity(admin) for _ in range(5)]
    for identity in members:
        await put_member(admin, app["slug"], identity["id"], "auditor")

    everything = await _events(admin, application=app["slug"])
    assert [e["action"] for e in everything] == ["application.member.put"] * 5 + [
        "application.create"
    ]
    assert all(e["application_id"] == app["id"] for e in everything)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"application": app["id"], "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = ok(await admin.get(AUDIT, params=params))
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert seen == ids
    assert pages == 3

    only = await _events(
        admin,
        application=app["slug"],
        action="application.member.put",
        outcome="success",
        resource_type="membership",
    )
    assert len(only) == 5
    one = await _events(admin, resource_id=members[0]["id"], action="application.member.put")
    assert len(one) == 1
    assert one[0]["details"] == {"role": "auditor"}
    me = ok(await admin.get(f"{API}/me"))
    mine = await _events(admin, actor_id=me["id"], application=app["slug"])
    assert len(mine) == 6
    assert await _events(admin, application=app["slug"], outcome="denied") == []
    since = everything[2]["occurred_at"]
    assert [e["id"] for e in await _events(admin, application=app["slug"], since=since)] == ids[:3]
    assert [e["id"] for e in await _events(admin, application=app["slug"], until=since)] == ids[3:]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        pytest.param({"outcome": "maybe"}, 422, "outcome", id="fail/outcome"),
        pytest.param({"limit": 0}, 422, "limit", id="fail/limit-zero"),
        pytest.param({"limit": 1001}, 422, "limit", id="fail/limit-big"),
        pytest.param({"limit": "ten"}, 422, "limit", id="fail/limit-type"),
        pytest.param({"cursor": "abc"}, 400, "cursor", id="fail/cursor"),
        pytest.param({"cursor": "9" * 40}, 400, "cursor", id="fail/cursor-huge"),
        pytest.param({"cursor": "\u00b2"}, 400, "cursor", id="fail/cursor-superscript"),
        pytest.param({"cursor": "-1"}, 400, "cursor", id="fail/cursor-negative"),
        pytest.param({"since": "yesterday"}, 422, "since", id="fail/since"),
        pytest.param({"actor_id": "me"}, 422, "actor_id", id="fail/actor"),
        pytest.param({"application": "no-such-app"}, 404, "app", id="fail/unknown-app"),
    ],
)
async def test_bad_filters(
    admin: httpx.AsyncClient, params: dict[str, Any], status: int, field: str
) -> None:
    problem(await admin.get(AUDIT, params=params), status, field)


async def test_naive_times_and_odd_values_are_not_500(admin: httpx.AsyncClient) -> None:
    for params in (
        {"since": "2020-01-01T00:00:00"},
        {"until": "2020-01-01"},
        {"action": "x" * 5000},
        {"action": "a\x00b"},
        {"resource_id": "\x00"},
        {"application": "a\x00b"},
        {"resource_type": "\u2603"},
    ):
        r = await admin.get(AUDIT, params=params)
        assert r.status_code < 500, (params, r.text)


async def test_application_roles_see_their_application_only(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    a = await create_application(admin)
    b = await create_application(admin)
    clients = {}
    for role in ("application-admin", "auditor", "operator"):
        identity = await create_identity(admin)
        await put_member(admin, a["slug"], identity["id"], role)
        clients[role] = client_for(identity["token"])
    b_admin = await create_identity(admin)
    await put_member(admin, b["slug"], b_admin["id"], "application-admin")

    # A refused change inside A is visible to A's readers, as `denied`.
    r = await clients["operator"].put(
        f"{API}/applications/{a['slug']}/members/{b_admin['id']}", json={"role": "operator"}
    )
    refused = problem(r, 403)

    for role in ("application-admin", "auditor"):
        me = clients[role]
        events = await _events(me, limit=1000)
        assert events
        assert {e["application_id"] for e in events} == {a["id"]}
        scoped = await _events(me, application=a["slug"], limit=1000)
        assert [e["id"] for e in scoped] == [e["id"] for e in events]
        actions = {e["action"] for e in scoped}
        assert {"application.create", "application.member.put"} <= actions
        denied = [e for e in scoped if e["request_id"] == refused["request_id"]]
        assert len(denied) == 1
        assert denied[0]["outcome"] == "denied"
        problem(await me.get(AUDIT, params={"application": b["slug"]}), 404, "app")
        problem(await me.get(AUDIT, params={"application": b["id"]}), 404, "app")

    problem(await clients["operator"].get(AUDIT), 403)
    problem(await clients["operator"].get(AUDIT, params={"application": a["slug"]}), 403)
    problem(await clients["operator"].get(AUDIT, params={"application": b["slug"]}), 404, "app")
    nobody = client_for((await create_identity(admin))["token"])
    problem(await nobody.get(AUDIT), 403)
    b_events = await _events(client_for(b_admin["token"]), limit=1000)
    assert {e["application_id"] for e in b_events} == {b["id"]}


async def test_refusal_with_odd_path_is_still_recorded(admin: httpx.AsyncClient) -> None:
    identity = await create_identity(admin)
    r = await admin.put(
        f"{API}/applications/a%00b/members/{identity['id']}", json={"role": "operator"}
    )
    refused = problem(r, 404, "app")
    found = [
        e
        for e in await _events(admin, action="application.member.put", outcome="failed", limit=50)
        if e["request_id"] == refused["request_id"]
    ]
    assert len(found) == 1
    assert found[0]["status_code"] == 404
    assert found[0]["details"]["path"]["app"] == "a\\x00b"
