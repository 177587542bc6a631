"""Who may add, change and remove members of an application (issue 20, defect 9).

A product admin sets any membership. An application admin manages its own application's
members, but names only identities it already shares an application with (any other id is
answered as if it did not exist: no id → name oracle), and never touches a product admin's
membership (403), so that it cannot lower the role of someone above it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_identity,
    every,
    ok,
    problem,
    put_member,
    uid,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _admin_of_new_app(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> tuple[str, httpx.AsyncClient, dict[str, Any]]:
    app = (await create_application(admin))["slug"]
    me = await create_identity(admin, name=uid("app-admin"))
    await put_member(admin, app, me["id"], "application-admin")
    return app, client_for(me["token"]), me


async def test_an_identity_it_shares_no_application_with_is_unknown_to_an_app_admin(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    app, me, _ = await _admin_of_new_app(admin, client_for)
    stranger = await create_identity(admin, name=uid("secret-name"))
    refused = await me.put(
        f"{API}/applications/{app}/members/{stranger['id']}", json={"role": "auditor"}
    )
    body = problem(refused, 404, "identity_id")
    assert stranger["name"] not in refused.text
    missing = "00000000-0000-4000-8000-000000000000"
    unknown = await me.put(f"{API}/applications/{app}/members/{missing}", json={"role": "auditor"})
    assert problem(unknown, 404, "identity_id")["detail"].replace(missing, "X") == body[
        "detail"
    ].replace(stranger["id"], "X")
    members = await every(admin, f"{API}/applications/{app}/members")
    assert stranger["id"] not in {m["identity_id"] for m in members}


async def test_an_app_admin_adds_a_colleague_from_another_of_its_applications(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    app, me, my = await _admin_of_new_app(admin, client_for)
    other = (await create_application(admin))["slug"]
    await put_member(admin, other, my["id"], "auditor")
    colleague = await create_identity(admin)
    await put_member(admin, other, colleague["id"], "operator")
    added = await me.put(
        f"{API}/applications/{app}/members/{colleague['id']}", json={"role": "operator"}
    )
    assert ok(added, 201)["name"] == colleague["name"]


async def test_an_app_admin_cannot_change_or_remove_a_product_admin(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    app, me, _ = await _admin_of_new_app(admin, client_for)
    boss = await create_identity(admin, product_admin=True)
    await put_member(admin, app, boss["id"], "application-admin")
    url = f"{API}/applications/{app}/members/{boss['id']}"
    problem(await me.put(url, json={"role": "auditor"}), 403, "identity_id")
    problem(await me.delete(url), 403, "identity_id")
    members = {
        m["identity_id"]: m["role"] for m in await every(admin, f"{API}/applications/{app}/members")
    }
    assert members[boss["id"]] == "application-admin"
    # a product admin may
    assert ok(await admin.put(url, json={"role": "auditor"}))["role"] == "auditor"
    assert (await admin.delete(url)).status_code == 204


async def test_a_product_admin_adds_any_identity(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    app, _, _ = await _admin_of_new_app(admin, client_for)
    anyone = await create_identity(admin)
    r = await admin.put(
        f"{API}/applications/{app}/members/{anyone['id']}", json={"role": "operator"}
    )
    assert ok(r, 201)["role"] == "operator"
