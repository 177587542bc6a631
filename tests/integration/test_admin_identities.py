"""Identities and bearer tokens: authentication failures, revocation, expiry, storage, roles."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlmodel import select

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
from certforge.common.db.tables import ApiToken
from harness import Backends

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _tokens_of(api_app: Any, identity_id: str) -> list[ApiToken]:
    async with api_app.state.certforge.sessions() as session:
        rows = await session.exec(select(ApiToken).where(ApiToken.identity_id == UUID(identity_id)))
        return list(rows)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="fail/missing"),
        pytest.param("", id="fail/empty"),
        pytest.param("Bearer", id="fail/no-token"),
        pytest.param("Bearer    ", id="fail/blank-token"),
        pytest.param("Basic YWRtaW46YWRtaW4=", id="fail/basic"),
        pytest.param("Bearer cf_not-a-real-token", id="fail/unknown"),
        pytest.param("Bearer " + "x" * 5000, id="fail/huge"),
        pytest.param("Bearer tok\u00e9n", id="fail/latin1"),
        pytest.param("cf_token-without-scheme", id="fail/no-scheme"),
    ],
)
async def test_bad_credentials_are_401(
    anonymous: httpx.AsyncClient, authorization: str | None
) -> None:
    # Sent as bytes so that a non-ASCII header reaches the server as raw Latin-1.
    headers = (
        {b"Authorization": authorization.encode("latin-1")} if authorization is not None else {}
    )
    for method, path in (("GET", "/me"), ("GET", "/cas"), ("POST", "/applications")):
        r = await anonymous.request(
            method, f"{API}{path}", headers=headers, json={"slug": uid(), "name": "x"}
        )
        problem(r, 401)


async def test_token_is_shown_once_and_stored_hashed(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    created = await create_identity(admin)
    token = created["token"]
    assert created["token_id"]
    rows = await _tokens_of(api_app, created["id"])
    assert len(rows) == 1
    row = rows[0]
    assert row.id == UUID(created["token_id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.token_hash != token
    assert token not in row.token_hash
    assert len(token) >= 40
    assert token.startswith(row.prefix)
    assert len(row.prefix) < len(token) / 2

    # Never shown again: not in the detail, the list or /me.
    for r in (
        await admin.get(f"{API}/identities/{created['id']}"),
        await admin.get(f"{API}/identities"),
    ):
        assert r.status_code == 200
        assert token not in r.text
        assert "token_hash" not in r.text
    detail = ok(await admin.get(f"{API}/identities/{created['id']}"))
    assert [t["id"] for t in detail["tokens"]] == [created["token_id"]]
    assert "token" not in detail


async def test_second_token_revocation_and_expiry(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    identity = await create_identity(admin)
    first = client_for(identity["token"])
    r = await admin.post(f"{API}/identities/{identity['id']}/tokens", json={"ttl": "1s"})
    short = ok(r, 201)
    assert short["expires_at"] is not None
    r = await admin.post(f"{API}/identities/{identity['id']}/tokens")
    second = ok(r, 201)
    assert second["expires_at"] is None
    assert len({identity["token"], short["token"], second["token"]}) == 3
    assert ok(await client_for(second["token"]).get(f"{API}/me"))["id"] == identity["id"]

    # Revoking one token leaves the others working.
    r = await admin.delete(f"{API}/identities/{identity['id']}/tokens/{identity['token_id']}")
    assert r.status_code == 204
    body = problem(await first.get(f"{API}/me"), 401)
    assert "revoked" in body["detail"]
    assert ok(await client_for(second["token"]).get(f"{API}/me"))["id"] == identity["id"]
    tokens = ok(await admin.get(f"{API}/identities/{identity['id']}"))["tokens"]
    revoked = {t["id"]: t["revoked_at"] for t in tokens}
    assert revoked[identity["token_id"]] is not None
    assert revoked[second["id"]] is None
    # Revoking twice is harmless; a token of someone else is not found.
    r = await admin.delete(f"{API}/identities/{identity['id']}/tokens/{identity['token_id']}")
    assert r.status_code == 204
    other = await create_identity(admin)
    r = await admin.delete(f"{API}/identities/{identity['id']}/tokens/{other['token_id']}")
    problem(r, 404, "token_id")
    r = await admin.delete(f"{API}/identities/{identity['id']}/tokens/{uuid4()}")
    problem(r, 404, "token_id")

    # Expiry.
    await asyncio.sleep(1.2)
    body = problem(await client_for(short["token"]).get(f"{API}/me"), 401)
    assert "expired" in body["detail"]


async def test_identity_token_ttl_expires(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    identity = await create_identity(admin, token_ttl="1s")
    client = client_for(identity["token"])
    assert ok(await client.get(f"{API}/me"))["id"] == identity["id"]
    await asyncio.sleep(1.5)
    body = problem(await client.get(f"{API}/me"), 401)
    assert "expired" in body["detail"]


async def test_disabled_identity_is_401(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    identity = await create_identity(admin)
    app = await create_application(admin)
    client = client_for(identity["token"])
    ok(await client.get(f"{API}/me"))
    assert (await admin.delete(f"{API}/identities/{identity['id']}")).status_code == 204
    problem(await client.get(f"{API}/me"), 401)
    detail = ok(await admin.get(f"{API}/identities/{identity['id']}"))
    assert detail["disabled_at"] is not None
    assert all(t["revoked_at"] is not None for t in detail["tokens"])
    # A disabled identity gets no new token and no membership.
    r = await admin.post(f"{API}/identities/{identity['id']}/tokens")
    problem(r, 409, "identity_id")
    r = await admin.put(
        f"{API}/applications/{app['slug']}/members/{identity['id']}", json={"role": "operator"}
    )
    problem(r, 422, "identity_id")
    assert await every(admin, f"{API}/applications/{app['slug']}/members") == []


async def test_admin_cannot_disable_itself(admin: httpx.AsyncClient) -> None:
    me = ok(await admin.get(f"{API}/me"))
    assert me["product_admin"] is True
    problem(await admin.delete(f"{API}/identities/{me['id']}"), 409, "identity_id")
    ok(await admin.get(f"{API}/me"))


async def test_a_second_product_admin(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    identity = await create_identity(admin, product_admin=True)
    assert identity["product_admin"] is True
    other_admin = client_for(identity["token"])
    app = await create_application(other_admin)
    assert ok(await admin.get(f"{API}/applications/{app['id']}"))["slug"] == app["slug"]


async def test_identity_refusals(admin: httpx.AsyncClient) -> None:
    taken = (await create_identity(admin))["name"]
    before = {i["name"] for i in await every(admin, f"{API}/identities")}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"name": taken}, 409, "name"),
        ({"name": ""}, 422, "name"),
        ({"name": "   "}, 422, "name"),
        ({"name": "x" * 129}, 422, "name"),
        ({"name": 42}, 422, "name"),
        ({}, 422, "name"),
        ({"name": uid(), "token_ttl": "10 years"}, 422, "token_ttl"),
        ({"name": uid(), "token_ttl": "0s"}, 422, "token_ttl"),
        ({"name": uid(), "token_ttl": "999999y"}, 422, "token_ttl"),
        ({"name": uid(), "product_admin": "yes please"}, 422, "product_admin"),
        ({"name": uid(), "role": "product-admin"}, 422, "role"),
    ]
    for body, status, field in cases:
        problem(await admin.post(f"{API}/identities", json=body), status, field)
    assert {i["name"] for i in await every(admin, f"{API}/identities")} == before
    missing = uuid4()
    problem(await admin.get(f"{API}/identities/{missing}"), 404, "identity_id")
    problem(await admin.delete(f"{API}/identities/{missing}"), 404, "identity_id")
    problem(await admin.post(f"{API}/identities/{missing}/tokens"), 404, "identity_id")
    r = await admin.post(f"{API}/identities/{missing}/tokens", json={"ttl": "soon"})
    problem(r, 422, "ttl")


async def test_non_admin_is_403_on_product_admin_endpoints(
    admin: httpx.AsyncClient, client_for: ClientFor, backends: Backends
) -> None:
    member = await create_identity(admin)
    app = await create_application(admin)
    await put_member(admin, app["slug"], member["id"], "application-admin")
    client = client_for(member["token"])
    some_id = uuid4()
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/identities", {"name": uid()}),
        ("GET", "/identities", None),
        ("GET", f"/identities/{member['id']}", None),
        ("DELETE", f"/identities/{member['id']}", None),
        ("POST", f"/identities/{member['id']}/tokens", {}),
        ("DELETE", f"/identities/{member['id']}/tokens/{member['token_id']}", None),
        ("POST", "/cas", {"name": uid()}),
        ("POST", "/cas/import", {"name": uid()}),
        ("GET", "/cas", None),
        ("POST", f"/cas/{some_id}/enable", None),
        ("POST", "/policies", {"name": uid()}),
        ("GET", "/policies", None),
        ("GET", f"/policies/{some_id}", None),
        ("PATCH", f"/policies/{some_id}", {}),
        ("DELETE", f"/policies/{some_id}", None),
        ("POST", "/profiles", {"slug": uid()}),
        ("GET", "/profiles", None),
        ("GET", "/profiles/x", None),
        ("PATCH", "/profiles/x", {}),
        ("DELETE", "/profiles/x", None),
        ("POST", "/applications", {"slug": uid(), "name": "x"}),
        ("PATCH", f"/applications/{app['slug']}", {"name": "mine now"}),
        ("DELETE", f"/applications/{app['slug']}", None),
        ("PUT", f"/applications/{app['slug']}/profiles/x", None),
        ("DELETE", f"/applications/{app['slug']}/profiles/x", None),
    ]
    for method, path, body in calls:
        r = await client.request(method, f"{API}{path}", json=body)
        problem(r, 403)
    # Nothing changed: the application, the identity and its token are as they were.
    got = ok(await admin.get(f"{API}/applications/{app['slug']}"))
    assert got["name"] == app["name"]
    assert ok(await client.get(f"{API}/me"))["disabled_at"] is None
    assert [a["slug"] for a in await every(client, f"{API}/applications")] == [app["slug"]]


# Relying parties fetch these without a token: CA certificates, chains, CRLs, OCSP, ACME.
# And the JWT login, whose credential is the JWT in its body.
_PUBLIC = re.compile(
    r"^/api/v1/cas/\{ca_id\}/(certificate|chain|crl|bundle)(\.\w+)?$"
    r"|^/api/v1/cas/\{ca_id\}/chains(/\{signer_ca_id\})?$"  # public, as a CA certificate is
    r"|^/(ocsp|acme)\b|^/api/v1/auth/login$"
)


async def test_every_endpoint_needs_a_token(anonymous: httpx.AsyncClient) -> None:
    """Walks the served OpenAPI document, so an endpoint added later is covered too."""
    document = ok(await anonymous.get("/openapi.json"))
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith(API) or _PUBLIC.search(path):
            continue
        url = re.sub(r"\{[^}]*_id\}", str(uuid4()), path)
        url = re.sub(r"\{[^}]*\}", "x", url)
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            r = await anonymous.request(method.upper(), url, json={})
            problem(r, 401)
            checked += 1
    assert checked >= 40


async def test_renaming_an_auth_method_to_a_siblings_name_is_a_409(
    admin: httpx.AsyncClient,
) -> None:
    """Found by schemathesis: the duplicate failed while the tokens it minted were being
    revoked, before the commit that turns it into a 409, and answered 500."""
    identity = ok(await admin.post(f"{API}/identities", json={"name": uid("renamed")}), 201)
    jwt = {"audience": "https://certforge.example", "issuer": "https://token.example.com"}
    url = f"{API}/identities/{identity['id']}/auth-methods"
    ok(await admin.post(url, json={"name": "first", "jwt": jwt}), 201)
    second = ok(await admin.post(url, json={"name": "second", "jwt": jwt}), 201)
    problem(
        await admin.put(f"{url}/{second['id']}", json={"name": "first", "jwt": jwt}), 409, "name"
    )
    assert ok(await admin.get(f"{url}/{second['id']}"))["name"] == "second"
