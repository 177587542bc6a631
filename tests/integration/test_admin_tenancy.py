"""Roles per application, and tenant isolation: one application's members see nothing of
another's (404, never 403, so not even its existence leaks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_identity,
    create_policy,
    create_profile,
    create_root,
    every,
    ok,
    problem,
    put_member,
    uid,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class Tenants:
    a: dict[str, Any]
    b: dict[str, Any]
    profile: dict[str, Any]
    spare_profile: dict[str, Any]
    clients: dict[str, httpx.AsyncClient]
    ids: dict[str, dict[str, Any]]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tenants(admin: httpx.AsyncClient, client_for: ClientFor) -> Tenants:
    root = await create_root(admin)
    policy = await create_policy(admin)
    profile = await create_profile(admin, root["id"], policy["id"])
    spare = await create_profile(admin, root["id"], policy["id"])
    a = await create_application(admin)
    b = await create_application(admin)
    for app in (a, b):
        ok(await admin.put(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"), 201)
    roles = {
        "admin_a": (a, "application-admin"),
        "operator_a": (a, "operator"),
        "auditor_a": (a, "auditor"),
        "admin_b": (b, "application-admin"),
    }
    ids = {}
    clients = {}
    for who, (app, role) in roles.items():
        identity = await create_identity(admin, name=uid(who.replace("_", "-")))
        await put_member(admin, app["slug"], identity["id"], role)
        ids[who] = identity
        clients[who] = client_for(identity["token"])
    clients["nobody"] = client_for((await create_identity(admin))["token"])
    return Tenants(a, b, profile, spare, clients, ids)


def _app_urls(app: dict[str, Any], profile: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every application-scoped route, with a body that would be valid."""
    base = f"{API}/applications/{app['slug']}"
    return [
        ("GET", base, None),
        ("GET", f"{base}/members", None),
        ("PUT", f"{base}/members/{{member}}", {"role": "auditor"}),
        ("DELETE", f"{base}/members/{{member}}", None),
        ("GET", f"{base}/profiles", None),
        ("GET", f"{base}/profiles/{profile}", None),
        ("GET", f"{base}/profiles/{profile}/enrollment/api", None),
        ("PUT", f"{base}/profiles/{profile}/enrollment/api", {"enabled": True}),
    ]


async def test_application_admin(admin: httpx.AsyncClient, tenants: Tenants) -> None:
    t = tenants
    me = t.clients["admin_a"]
    a = t.a["slug"]
    victim = await create_identity(admin)

    # Its own application: members and enrollment, yes (an identity it shares no application
    # with is unknown to it: test_member_rules.py).
    ok(await me.get(f"{API}/applications/{a}"))
    await put_member(admin, a, victim["id"], "auditor")
    r = await me.put(f"{API}/applications/{a}/members/{victim['id']}", json={"role": "operator"})
    assert ok(r)["role"] == "operator"
    r = await me.put(f"{API}/applications/{a}/members/{victim['id']}", json={"role": "auditor"})
    assert ok(r)["role"] == "auditor"
    assert (await me.delete(f"{API}/applications/{a}/members/{victim['id']}")).status_code == 204
    r = await me.put(
        f"{API}/applications/{a}/profiles/{t.profile['slug']}/enrollment/api",
        json={"enabled": True, "auto_renew": True, "renew_before_days": 10},
    )
    assert ok(r)["api"]["renew_before_days"] == 10
    assert len(await every(me, f"{API}/applications/{a}/members")) == 3

    # Attaching, detaching, renaming or deleting the application: product-admin only.
    problem(await me.put(f"{API}/applications/{a}/profiles/{t.spare_profile['slug']}"), 403)
    problem(await me.delete(f"{API}/applications/{a}/profiles/{t.profile['slug']}"), 403)
    problem(await me.patch(f"{API}/applications/{a}", json={"name": "mine"}), 403)
    problem(await me.delete(f"{API}/applications/{a}"), 403)
    assert [p["profile"] for p in ok(await me.get(f"{API}/applications/{a}/profiles"))] == [
        t.profile["slug"]
    ]
    assert ok(await admin.get(f"{API}/applications/{a}"))["name"] == t.a["name"]

    # Only its own application is listed.
    assert [x["slug"] for x in await every(me, f"{API}/applications")] == [a]


@pytest.mark.parametrize("who", ["operator_a", "auditor_a"])
async def test_operator_and_auditor_read_but_do_not_change(
    admin: httpx.AsyncClient, tenants: Tenants, who: str
) -> None:
    t = tenants
    me = t.clients[who]
    a = t.a["slug"]
    url = f"{API}/applications/{a}/profiles/{t.profile['slug']}/enrollment/api"
    before = ok(await admin.get(url))
    members_before = await every(admin, f"{API}/applications/{a}/members")

    ok(await me.get(f"{API}/applications/{a}"))
    assert await every(me, f"{API}/applications/{a}/members") == members_before
    assert ok(await me.get(url)) == before
    stranger = await create_identity(admin)
    problem(
        await me.put(f"{API}/applications/{a}/members/{stranger['id']}", json={"role": "auditor"}),
        403,
    )
    # Not even promoting itself.
    r = await me.put(
        f"{API}/applications/{a}/members/{t.ids[who]['id']}", json={"role": "application-admin"}
    )
    problem(r, 403)
    problem(await me.delete(f"{API}/applications/{a}/members/{t.ids['admin_a']['id']}"), 403)
    problem(await me.put(url, json={"enabled": not before["enabled"]}), 403)
    assert ok(await admin.get(url)) == before
    assert await every(admin, f"{API}/applications/{a}/members") == members_before
    assert [x["slug"] for x in await every(me, f"{API}/applications")] == [a]


@pytest.mark.parametrize("who", ["admin_a", "operator_a", "auditor_a", "nobody"])
async def test_another_application_is_404_never_403(
    admin: httpx.AsyncClient, tenants: Tenants, who: str
) -> None:
    t = tenants
    me = t.clients[who]
    ghost = {"slug": uid("no-such-app"), "id": None}
    member = t.ids["admin_b"]["id"]
    for target in (t.b, {**t.b, "slug": t.b["id"]}, ghost):
        for method, url, body in _app_urls(target, t.profile["slug"]):
            r = await me.request(method, url.format(member=member), json=body)
            err = problem(r, 404, "app")
            assert t.b["slug"] not in err["detail"] or target["slug"] == t.b["slug"]
    assert (await every(admin, f"{API}/applications/{t.b['slug']}/members"))[0]["identity_id"] == (
        member
    )
    # The two answers cannot be told apart: same status, type and wording.
    real = (await me.get(f"{API}/applications/{t.b['slug']}")).json()
    fake = (await me.get(f"{API}/applications/{ghost['slug']}")).json()
    assert real["type"] == fake["type"]
    assert real["title"] == fake["title"]
    assert real["detail"].replace(t.b["slug"], "X") == fake["detail"].replace(ghost["slug"], "X")
    # Nor does the application list.
    slugs = [x["slug"] for x in await every(me, f"{API}/applications")]
    assert t.b["slug"] not in slugs
    assert slugs == ([] if who == "nobody" else [t.a["slug"]])


async def test_product_admin_sees_all(admin: httpx.AsyncClient, tenants: Tenants) -> None:
    slugs = {x["slug"] for x in await every(admin, f"{API}/applications")}
    assert {tenants.a["slug"], tenants.b["slug"]} <= slugs


async def test_membership_change_takes_effect_at_once(
    admin: httpx.AsyncClient, client_for: ClientFor, tenants: Tenants
) -> None:
    identity = await create_identity(admin)
    me = client_for(identity["token"])
    b = tenants.b["slug"]
    problem(await me.get(f"{API}/applications/{b}"), 404, "app")
    await put_member(admin, b, identity["id"], "auditor")
    ok(await me.get(f"{API}/applications/{b}"))
    await put_member(admin, b, identity["id"], "application-admin")
    r = await me.put(f"{API}/applications/{b}/members/{identity['id']}", json={"role": "auditor"})
    assert ok(r)["role"] == "auditor"
    problem(
        await me.put(f"{API}/applications/{b}/members/{identity['id']}", json={"role": "operator"}),
        403,
    )
    assert (
        await admin.delete(f"{API}/applications/{b}/members/{identity['id']}")
    ).status_code == 204
    problem(await me.get(f"{API}/applications/{b}"), 404, "app")
