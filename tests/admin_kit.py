"""Builders and assertions shared by the admin API integration tests (`test_admin_*.py`).

Every name a builder makes carries a random suffix: all integration tests of a session share
one database, so nothing may depend on a name being free or on a list being short.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

API = "/api/v1"
PROBLEM_JSON = "application/problem+json"

ClientFor = Callable[[str | None], httpx.AsyncClient]


def uid(prefix: str = "t") -> str:
    """A unique, slug-safe name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def problem(
    response: httpx.Response, status: int, *fields: str, detail_contains: str | None = None
) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem with `status` naming each of `fields`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert body.get("type", "").startswith("urn:certforge:problem:"), body
    assert body.get("title"), body
    named = [e["field"] for e in body.get("errors", [])]
    for field in fields:
        assert field in named, f"expected an error naming {field!r}, got {named}: {body}"
    if detail_contains is not None:
        assert detail_contains in body["detail"], body
    if status == 401:
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), (
            response.headers
        )
    return body


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


async def every(client: httpx.AsyncClient, url: str, **params: Any) -> list[Any]:
    """Every item of a paged list (`{"items", "next_cursor"}`), following the cursors."""
    items: list[Any] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = ok(await client.get(url, params=query))
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def root_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": uid("root"),
        "type": "root",
        "subject": {"common_name": "Example Root CA", "organization": "Example"},
        "key_algorithm": "EC_P256",
        "validity": "10y",
        "max_path_length": 1,
    }
    body.update(overrides)
    return body


def intermediate_body(parent_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": uid("issuing"),
        "type": "intermediate",
        "parent_ca_id": parent_id,
        "subject": {"common_name": "Example Issuing CA", "organization": "Example"},
        "key_algorithm": "EC_P256",
        "validity": "5y",
        "max_path_length": 0,
    }
    body.update(overrides)
    return body


def policy_body(**overrides: Any) -> dict[str, Any]:
    """The issue's example policy."""
    body: dict[str, Any] = {
        "name": uid("web"),
        "subject": {"common_name": {"allowed": ["*.example.com", "example.com"]}},
        "sans": {
            "dns": {"allowed": ["*.example.com", "example.com"]},
            "ip": {"allowed": ["10.0.0.0/8"]},
        },
        "key_algorithms": ["EC_P256", "EC_P384", "RSA_2048", "RSA_3072", "ED25519"],
        "key_usages": {"allowed": ["digital_signature", "key_encipherment"]},
        "extended_key_usages": {"allowed": ["server_auth", "client_auth"]},
        "max_validity": "90d",
    }
    body.update(overrides)
    return body


def profile_body(ca_id: str, policy_id: str, **overrides: Any) -> dict[str, Any]:
    """The issue's example profile."""
    body: dict[str, Any] = {
        "slug": uid("web-server"),
        "ca_id": ca_id,
        "policy_id": policy_id,
        "defaults": {
            "ttl": "30d",
            "key_algorithm": "EC_P256",
            "key_usages": ["digital_signature"],
            "extended_key_usages": ["server_auth"],
        },
    }
    body.update(overrides)
    return body


async def create_root(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(await admin.post(f"{API}/cas", json=root_body(**overrides)), 201)
    return result


async def create_intermediate(
    admin: httpx.AsyncClient, parent_id: str, **overrides: Any
) -> dict[str, Any]:
    body = intermediate_body(parent_id, **overrides)
    result: dict[str, Any] = ok(await admin.post(f"{API}/cas", json=body), 201)
    return result


async def create_policy(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(
        await admin.post(f"{API}/policies", json=policy_body(**overrides)), 201
    )
    return result


async def create_profile(
    admin: httpx.AsyncClient, ca_id: str, policy_id: str, **overrides: Any
) -> dict[str, Any]:
    body = profile_body(ca_id, policy_id, **overrides)
    result: dict[str, Any] = ok(await admin.post(f"{API}/profiles", json=body), 201)
    return result


async def create_application(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    slug = uid("app")
    body: dict[str, Any] = {"slug": slug, "name": f"App {slug}"}
    body.update(overrides)
    result: dict[str, Any] = ok(await admin.post(f"{API}/applications", json=body), 201)
    return result


async def create_identity(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": uid("id")}
    body.update(overrides)
    result: dict[str, Any] = ok(await admin.post(f"{API}/identities", json=body), 201)
    return result


async def put_member(
    admin: httpx.AsyncClient, app: str, identity_id: str, role: str
) -> dict[str, Any]:
    r = await admin.put(f"{API}/applications/{app}/members/{identity_id}", json={"role": role})
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result
