"""Issue 18: admin objects carry an `ETag` on reads, and a PATCH or PUT with `If-Match` applies
only to the version the caller read: a stale tag is a 412 problem that changes nothing, two
writers holding the same tag cannot both win, and without `If-Match` a change applies as it
always did (documented)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from admin_kit import (
    API,
    create_application,
    create_identity,
    create_policy,
    create_profile,
    create_root,
    ok,
    problem,
    put_member,
    uid,
)
from alerts_kit import alerts_url, create_alert
from syncs_kit import create_sync, syncs_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class Resource:
    url: str
    method: str
    change: Callable[[str], dict[str, Any]]
    """A body that changes something a GET shows, different for each label."""


async def _policy(admin: httpx.AsyncClient, _: Path) -> Resource:
    policy = await create_policy(admin)
    return Resource(f"{API}/policies/{policy['id']}", "PATCH", lambda s: {"description": s})


async def _profile(admin: httpx.AsyncClient, _: Path) -> Resource:
    root, policy = await create_root(admin), await create_policy(admin)
    profile = await create_profile(admin, root["id"], policy["id"])
    return Resource(f"{API}/profiles/{profile['slug']}", "PATCH", lambda s: {"description": s})


async def _application(admin: httpx.AsyncClient, _: Path) -> Resource:
    app = await create_application(admin)
    return Resource(f"{API}/applications/{app['slug']}", "PATCH", lambda s: {"description": s})


async def _sync(admin: httpx.AsyncClient, tmp_path: Path) -> Resource:
    app = await create_application(admin)
    sync = await create_sync(admin, app["slug"], "directory", {"path": str(tmp_path)})
    return Resource(f"{syncs_url(app['slug'])}/{sync['id']}", "PATCH", lambda s: {"name": s})


async def _auth_method(admin: httpx.AsyncClient, _: Path) -> Resource:
    identity = await create_identity(admin)
    url = f"{API}/identities/{identity['id']}/auth-methods"

    def body(label: str) -> dict[str, Any]:
        jwt = {"issuer": "https://issuer.example", "audience": label, "bound_claims": {"a": "b"}}
        return {"name": "ci", "jwt": jwt}

    method = ok(await admin.post(url, json=body("first")), 201)
    return Resource(f"{url}/{method['id']}", "PUT", body)


SLACK = "https://hooks.slack.example/services/T0/B0/lost-updates"


async def _alert(admin: httpx.AsyncClient, _: Path) -> Resource:
    app = (await create_application(admin))["slug"]
    alert = await create_alert(admin, app, "issued", [{"type": "slack", "url": SLACK}])
    return Resource(f"{alerts_url(app)}/{alert['id']}", "PATCH", lambda s: {"name": s})


async def _member(admin: httpx.AsyncClient, _: Path) -> Resource:
    app, identity = (await create_application(admin))["slug"], await create_identity(admin)
    await put_member(admin, app, identity["id"], "operator")
    roles = itertools.cycle(["auditor", "application-admin", "operator"])
    url = f"{API}/applications/{app}/members/{identity['id']}"
    return Resource(url, "PUT", lambda _: {"role": next(roles)})


async def _attachment(admin: httpx.AsyncClient, _: Path) -> Resource:
    root, policy = await create_root(admin), await create_policy(admin)
    profile = (await create_profile(admin, root["id"], policy["id"]))["slug"]
    app = (await create_application(admin))["slug"]
    url = f"{API}/applications/{app}/profiles/{profile}"
    ok(await admin.put(url), 201)
    days = itertools.cycle([10, 20, 30])
    return Resource(
        url, "PUT", lambda _: {"api": {"enabled": True, "renew_before_days": next(days)}}
    )


MAKERS: dict[str, Callable[[httpx.AsyncClient, Path], Awaitable[Resource]]] = {
    "policy": _policy,
    "profile": _profile,
    "application": _application,
    "sync": _sync,
    "auth-method": _auth_method,
    "alert": _alert,
    "member": _member,
    "attachment": _attachment,
}


async def _read(admin: httpx.AsyncClient, url: str) -> tuple[str, Any]:
    r = await admin.get(url)
    body = ok(r)
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag), etag  # a strong tag
    return etag, body


@pytest.mark.parametrize("kind", list(MAKERS))
async def test_if_match_refuses_a_lost_update(
    admin: httpx.AsyncClient, tmp_path: Path, kind: str
) -> None:
    resource = await MAKERS[kind](admin, tmp_path)
    etag, before = await _read(admin, resource.url)
    assert (await _read(admin, resource.url))[0] == etag, "the same version, the same tag"

    # The version read: applied, and the answer carries the new version's tag.
    r = await admin.request(
        resource.method, resource.url, json=resource.change(uid("a")), headers={"If-Match": etag}
    )
    assert r.status_code == 200, r.text
    current, after = await _read(admin, resource.url)
    assert current != etag
    assert r.headers["ETag"] == current
    assert after != before

    # The old version again: 412, nothing changed.
    stale = await admin.request(
        resource.method, resource.url, json=resource.change(uid("b")), headers={"If-Match": etag}
    )
    problem(stale, 412, "If-Match")
    assert await _read(admin, resource.url) == (current, after)

    # One of several listed tags, and `*`, match; no If-Match applies unconditionally.
    for header in (f'"nope", {current}', "*", None):
        headers = {"If-Match": header} if header else {}
        r = await admin.request(
            resource.method, resource.url, json=resource.change(uid("c")), headers=headers
        )
        assert r.status_code == 200, (header, r.text)
        current = r.headers["ETag"]


@pytest.mark.parametrize("kind", ["policy", "sync"])
async def test_two_writers_with_the_same_tag_one_wins(
    admin: httpx.AsyncClient, tmp_path: Path, kind: str
) -> None:
    resource = await MAKERS[kind](admin, tmp_path)
    etag, _ = await _read(admin, resource.url)
    headers = {"If-Match": etag}
    answers = await asyncio.gather(
        *(
            admin.request(resource.method, resource.url, json=body, headers=headers)
            for body in (resource.change(uid("w1")), resource.change(uid("w2")))
        )
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 412], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200)
    assert (await _read(admin, resource.url))[0] == winner.headers["ETag"]


async def test_cas_and_identities_are_tagged(admin: httpx.AsyncClient) -> None:
    root, identity = await create_root(admin), await create_identity(admin)
    for url in (f"{API}/cas/{root['id']}", f"{API}/identities/{identity['id']}"):
        first, _ = await _read(admin, url)
        assert (await _read(admin, url))[0] == first
    before, _ = await _read(admin, f"{API}/cas/{root['id']}")
    ok(await admin.post(f"{API}/cas/{root['id']}/disable"))
    assert (await _read(admin, f"{API}/cas/{root['id']}"))[0] != before
