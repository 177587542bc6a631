"""Applications, their members, attached profiles and API enrollment (as a product admin)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

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


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def profile(admin: httpx.AsyncClient) -> dict[str, Any]:
    root = await create_root(admin)
    policy = await create_policy(admin)
    return await create_profile(admin, root["id"], policy["id"])


async def _app_slugs(admin: httpx.AsyncClient) -> set[str]:
    return {a["slug"] for a in await every(admin, f"{API}/applications")}


async def test_crud(admin: httpx.AsyncClient) -> None:
    slug = uid("shop")
    app = ok(
        await admin.post(
            f"{API}/applications", json={"slug": slug, "name": "Shop", "description": "the shop"}
        ),
        201,
    )
    assert app["slug"] == slug
    assert app["description"] == "the shop"
    assert slug in await _app_slugs(admin)
    assert ok(await admin.get(f"{API}/applications/{app['id']}")) == app
    patched = ok(await admin.patch(f"{API}/applications/{slug}", json={"name": "Shop 2"}))
    assert patched["name"] == "Shop 2"
    assert patched["description"] == "the shop"
    assert patched["slug"] == slug
    assert patched["updated_at"] > app["updated_at"]
    assert (await admin.delete(f"{API}/applications/{slug}")).status_code == 204
    problem(await admin.get(f"{API}/applications/{slug}"), 404, "app")
    assert slug not in await _app_slugs(admin)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": "x"}, "slug", id="fail/missing-slug"),
        pytest.param({"slug": uid()}, "name", id="fail/missing-name"),
        pytest.param({"slug": "Shop", "name": "x"}, "slug", id="fail/upper-case"),
        pytest.param({"slug": "sh_op", "name": "x"}, "slug", id="fail/underscore"),
        pytest.param({"slug": "shop-", "name": "x"}, "slug", id="fail/trailing-hyphen"),
        pytest.param({"slug": "", "name": "x"}, "slug", id="fail/empty"),
        pytest.param({"slug": "a" * 64, "name": "x"}, "slug", id="fail/too-long"),
        pytest.param({"slug": str(uuid4()), "name": "x"}, "slug", id="fail/uuid"),
        pytest.param({"slug": 7, "name": "x"}, "slug", id="fail/number"),
        pytest.param({"slug": uid(), "name": ""}, "name", id="fail/empty-name"),
        pytest.param({"slug": uid(), "name": "x", "owner": "me"}, "owner", id="fail/unknown"),
        pytest.param(
            {"slug": uid(), "name": "x", "description": "d" * 1025},
            "description",
            id="fail/long-description",
        ),
        pytest.param({"slug": uid(), "name": ["x"]}, "name", id="fail/name-list"),
    ],
)
async def test_bad_application_is_422(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    before = await _app_slugs(admin)
    problem(await admin.post(f"{API}/applications", json=body), 422, field)
    assert await _app_slugs(admin) == before


async def test_duplicate_and_unknown(admin: httpx.AsyncClient) -> None:
    app = await create_application(admin)
    r = await admin.post(f"{API}/applications", json={"slug": app["slug"], "name": "again"})
    problem(r, 409, "slug")
    assert ok(await admin.get(f"{API}/applications/{app['slug']}")) == app
    for ref in ("no-such-app", str(uuid4())):
        problem(await admin.get(f"{API}/applications/{ref}"), 404, "app")
        problem(await admin.patch(f"{API}/applications/{ref}", json={"name": "x"}), 404, "app")
        problem(await admin.delete(f"{API}/applications/{ref}"), 404, "app")
        problem(await admin.get(f"{API}/applications/{ref}/members"), 404, "app")
        problem(await admin.get(f"{API}/applications/{ref}/profiles"), 404, "app")
    r = await admin.patch(f"{API}/applications/{app['slug']}", json={"slug": "renamed"})
    problem(r, 422, "slug")
    r = await admin.patch(f"{API}/applications/{app['slug']}", json={"name": ""})
    problem(r, 422, "name")
    assert ok(await admin.get(f"{API}/applications/{app['slug']}")) == app


async def test_members(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    app = await create_application(admin)
    alice = await create_identity(admin, name=uid("alice"))
    bob = await create_identity(admin, name=uid("bob"))
    base = f"{API}/applications/{app['slug']}/members"

    r = await admin.put(f"{base}/{alice['id']}", json={"role": "auditor"})
    assert ok(r, 201)["role"] == "auditor"
    r = await admin.put(f"{base}/{alice['id']}", json={"role": "application-admin"})
    assert ok(r, 200)["role"] == "application-admin"
    await put_member(admin, app["id"], bob["id"], "operator")
    members = await every(admin, base)
    assert {(m["identity_id"], m["name"], m["role"]) for m in members} == {
        (alice["id"], alice["name"], "application-admin"),
        (bob["id"], bob["name"], "operator"),
    }
    me = ok(await client_for(bob["token"]).get(f"{API}/me"))
    assert me["memberships"] == [
        {"application_id": app["id"], "application": app["slug"], "role": "operator"}
    ]

    for body, status, field in (
        ({"role": "owner"}, 422, "role"),
        ({"role": "product-admin"}, 422, "role"),
        ({}, 422, "role"),
        ({"role": "operator", "extra": 1}, 422, "extra"),
        ({"role": None}, 422, "role"),
    ):
        problem(await admin.put(f"{base}/{bob['id']}", json=body), status, field)
    problem(await admin.put(f"{base}/{uuid4()}", json={"role": "operator"}), 404, "identity_id")
    problem(await admin.put(f"{base}/bob", json={"role": "operator"}), 422, "identity_id")
    assert await every(admin, base) == members

    assert (await admin.delete(f"{base}/{bob['id']}")).status_code == 204
    problem(await admin.delete(f"{base}/{bob['id']}"), 404, "identity_id")
    assert [m["identity_id"] for m in await every(admin, base)] == [alice["id"]]
    # Bob lost his access with his membership.
    problem(await client_for(bob["token"]).get(f"{API}/applications/{app['slug']}"), 404, "app")


async def test_attach_enroll_detach(admin: httpx.AsyncClient, profile: dict[str, Any]) -> None:
    app = await create_application(admin)
    base = f"{API}/applications/{app['slug']}/profiles"
    slug = profile["slug"]

    problem(await admin.get(f"{base}/{slug}"), 404, "profile")
    problem(await admin.get(f"{base}/{slug}/enrollment/api"), 404, "profile")
    r = await admin.put(f"{base}/{slug}/enrollment/api", json={"enabled": True})
    problem(r, 404, "profile")
    problem(await admin.delete(f"{base}/{slug}"), 404, "profile")
    problem(await admin.put(f"{base}/no-such-profile"), 404, "profile")
    problem(await admin.put(f"{base}/{uuid4()}"), 404, "profile")
    problem(await admin.put(f"{API}/applications/no-such-app/profiles/{slug}"), 404, "app")
    assert ok(await admin.get(base)) == []

    attached = ok(await admin.put(f"{base}/{slug}"), 201)
    assert attached["api"] == {"enabled": False, "auto_renew": True, "renew_before_days": 30}
    assert attached["acme_enabled"] is False

    url = f"{base}/{slug}/enrollment/api"
    for body, field in (
        ({}, "enabled"),
        ({"enabled": "maybe"}, "enabled"),
        ({"enabled": [True]}, "enabled"),
        ({"enabled": True, "renew_before_days": 0}, "renew_before_days"),
        ({"enabled": True, "renew_before_days": -5}, "renew_before_days"),
        ({"enabled": True, "renew_before_days": 3651}, "renew_before_days"),
        ({"enabled": True, "renew_before_days": "ten"}, "renew_before_days"),
        ({"enabled": True, "auto_renew": "sometimes"}, "auto_renew"),
        ({"enabled": True, "acme": True}, "acme"),
    ):
        problem(await admin.put(url, json=body), 422, field)
    assert ok(await admin.get(url)) == attached["api"]

    r = await admin.put(url, json={"enabled": True, "auto_renew": False, "renew_before_days": 7})
    assert ok(r)["api"] == {"enabled": True, "auto_renew": False, "renew_before_days": 7}
    # Attaching again keeps the enrollment settings.
    again = ok(await admin.put(f"{base}/{profile['id']}"), 200)
    assert again["api"] == {"enabled": True, "auto_renew": False, "renew_before_days": 7}

    assert (await admin.delete(f"{base}/{profile['id']}")).status_code == 204
    assert ok(await admin.get(base)) == []
    # Re-attaching starts from the default settings.
    assert ok(await admin.put(f"{base}/{slug}"), 201)["api"]["enabled"] is False


async def test_delete_application_takes_members_and_attachments(
    admin: httpx.AsyncClient, client_for: ClientFor, profile: dict[str, Any]
) -> None:
    app = await create_application(admin)
    member = await create_identity(admin)
    await put_member(admin, app["slug"], member["id"], "operator")
    ok(await admin.put(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"), 201)
    assert (await admin.delete(f"{API}/applications/{app['slug']}")).status_code == 204
    assert ok(await client_for(member["token"]).get(f"{API}/me"))["memberships"] == []
    # The profile is free again.
    assert ok(await admin.get(f"{API}/profiles/{profile['slug']}"))["id"] == profile["id"]
    # The slug may be reused.
    again = ok(
        await admin.post(f"{API}/applications", json={"slug": app["slug"], "name": "again"}), 201
    )
    assert again["id"] != app["id"]
    assert await every(admin, f"{API}/applications/{app['slug']}/members") == []


async def test_attach_with_enrollment_in_one_call(
    admin: httpx.AsyncClient, profile: dict[str, Any]
) -> None:
    """The first certificate needs one call fewer: attaching can switch API enrollment on."""
    app = await create_application(admin)
    base = f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"
    enabled = {"enabled": True, "auto_renew": False, "renew_before_days": 9}

    for body, field in (
        ({"api": {"enabled": "maybe"}}, "api.enabled"),
        ({"api": {"enabled": True, "renew_before_days": 0}}, "api.renew_before_days"),
        ({"enrollment": {"enabled": True}}, "enrollment"),
        ({"api": True}, "api"),
    ):
        problem(await admin.put(base, json=body), 422, field)
    assert ok(await admin.get(f"{API}/applications/{app['slug']}/profiles")) == []

    attached = ok(await admin.put(base, json={"api": enabled}), 201)
    assert attached["api"] == enabled
    assert ok(await admin.get(f"{base}/enrollment/api")) == enabled
    # The same settings again change nothing; other settings update the attachment.
    assert ok(await admin.put(base, json={"api": enabled}), 200)["api"] == enabled
    off = {"enabled": False, "auto_renew": True, "renew_before_days": 30}
    assert ok(await admin.put(base, json={"api": {"enabled": False}}), 200)["api"] == off
    # No body keeps what is there.
    assert ok(await admin.put(base), 200)["api"] == off

    events = ok(
        await admin.get(f"{API}/audit-events", params={"application": app["slug"], "limit": 10})
    )
    changes = [
        e["details"]["api"]
        for e in events["items"]
        if e["action"] == "application.profile.attach" and "api" in (e["details"] or {})
    ]
    assert changes == [off, enabled]
