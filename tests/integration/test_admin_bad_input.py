"""Bad input anywhere: a precise problem document, nothing changed, and never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func
from sqlalchemy import table as sa_table
from sqlmodel import select

from admin_kit import (
    API,
    PROBLEM_JSON,
    create_application,
    create_identity,
    create_policy,
    create_profile,
    create_root,
    every,
    ok,
    problem,
    root_body,
    uid,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

_TABLES = (
    "identities",
    "api_tokens",
    "certificate_authorities",
    "policies",
    "profiles",
    "applications",
    "memberships",
    "application_profiles",
)


async def _counts(api_app: Any) -> dict[str, int]:
    async with api_app.state.certforge.sessions() as session:
        counts = {}
        for name in _TABLES:
            query = select(func.count()).select_from(sa_table(name))
            counts[name] = (await session.exec(query)).one()
        return counts


async def _snapshot(admin: httpx.AsyncClient, urls: list[str]) -> list[Any]:
    return [ok(await admin.get(url)) for url in urls]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(admin: httpx.AsyncClient) -> dict[str, Any]:
    root = await create_root(admin)
    policy = await create_policy(admin)
    profile = await create_profile(admin, root["id"], policy["id"])
    app = await create_application(admin)
    identity = await create_identity(admin)
    ok(await admin.put(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"), 201)
    r = await admin.put(
        f"{API}/applications/{app['slug']}/members/{identity['id']}", json={"role": "operator"}
    )
    ok(r, 201)
    return {"root": root, "policy": policy, "profile": profile, "app": app, "identity": identity}


def _writes(w: dict[str, Any]) -> list[tuple[str, str]]:
    """Every admin endpoint that takes a body."""
    app, profile = w["app"]["slug"], w["profile"]["slug"]
    return [
        ("POST", f"{API}/identities"),
        ("POST", f"{API}/identities/{w['identity']['id']}/tokens"),
        ("POST", f"{API}/cas"),
        ("POST", f"{API}/cas/import"),
        ("POST", f"{API}/policies"),
        ("PATCH", f"{API}/policies/{w['policy']['id']}"),
        ("POST", f"{API}/profiles"),
        ("PATCH", f"{API}/profiles/{profile}"),
        ("POST", f"{API}/applications"),
        ("PATCH", f"{API}/applications/{app}"),
        ("PUT", f"{API}/applications/{app}/members/{w['identity']['id']}"),
        ("PUT", f"{API}/applications/{app}/profiles/{profile}/enrollment/api"),
    ]


def _reads(w: dict[str, Any]) -> list[str]:
    app, profile = w["app"]["slug"], w["profile"]["slug"]
    return [
        f"{API}/cas/{w['root']['id']}",
        f"{API}/policies/{w['policy']['id']}",
        f"{API}/profiles/{profile}",
        f"{API}/applications/{app}",
        f"{API}/applications/{app}/members",
        f"{API}/applications/{app}/profiles",
        f"{API}/identities/{w['identity']['id']}",
    ]


MALFORMED_JSON = [
    pytest.param(b"{", id="fail/truncated"),
    pytest.param(b'{"name": "x",}', id="fail/trailing-comma"),
    pytest.param(b"{'name': 'x'}", id="fail/single-quotes"),
    pytest.param(b"not json", id="fail/words"),
    pytest.param(b'{"name": "x"} {"name": "y"}', id="fail/two-documents"),
    pytest.param(b'{"name": "a\x01b"}', id="fail/raw-control-char"),
    pytest.param(b"\xff\xfe\x00{", id="fail/not-utf8"),
    pytest.param(b'{"name": "\xc3\x28"}', id="fail/invalid-utf8-in-string"),
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="fail/deeply-nested"),
]


@pytest.mark.parametrize("body", MALFORMED_JSON)
async def test_malformed_json_is_400(
    admin: httpx.AsyncClient, api_app: Any, world: dict[str, Any], body: bytes
) -> None:
    before = await _counts(api_app)
    snapshot = await _snapshot(admin, _reads(world))
    for method, url in _writes(world):
        r = await admin.request(
            method, url, content=body, headers={"Content-Type": "application/json"}
        )
        problem(r, 400)
    assert await _counts(api_app) == before
    assert await _snapshot(admin, _reads(world)) == snapshot


ODD_BODIES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'[{"name": "x"}]', id="array-of-object"),
    pytest.param(b'"name"', id="string"),
    pytest.param(b"42", id="number"),
    pytest.param(b"true", id="bool"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b'{"name": null, "slug": null, "role": null, "enabled": null}', id="nulls"),
    pytest.param(b'{"name": [], "slug": {}, "role": [], "enabled": {}}', id="wrong-containers"),
    pytest.param(b'{"name": "' + b"x" * 200_000 + b'"}', id="huge-string"),
    pytest.param(b'{"name": "a\\u0000b", "slug": "a\\u0000b"}', id="nul-in-name"),
    pytest.param(b'{"name": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b'{"description": "a\\u0000b"}', id="nul-in-description"),
    pytest.param(
        b'{"name": "n", "subject": {"common_name": "a\\u0000b"}, "type": "root", "validity": "1y"}',
        id="nul-in-subject",
    ),
    pytest.param(
        b'{"name": "n", "subject": {"common_name": {"allowed": ["a\\u0000b"]}}}',
        id="nul-in-policy-pattern",
    ),
    pytest.param(
        b'{"name": "n", "sans": {"uri": {"allowed": ["spiffe://a\\u0000"]}, '
        b'"email": {"denied": ["*@a\\u0000"]}}}',
        id="nul-in-san-pattern",
    ),
    pytest.param(b'{"subject": {"a\\u0000": {"allowed": ["x"]}}}', id="nul-in-key"),
    pytest.param(
        b'{"validity": 1e400, "ttl": 1e400, "token_ttl": 1e400, "max_validity": 1e400}',
        id="infinite-durations",
    ),
    pytest.param(
        b'{"validity": NaN, "ttl": -Infinity, "renew_before_days": Infinity}', id="nan-and-infinity"
    ),
    pytest.param(
        b'{"renew_before_days": 100000000000000000000000000000, "enabled": true}', id="huge-int"
    ),
    pytest.param(b'{"defaults": {"ttl": "99999999999999999999d"}}', id="huge-duration"),
    pytest.param(
        b'{"defaults": {"ttl": "999999y"}, "max_validity": "999999y"}', id="overflowing-duration"
    ),
    pytest.param(b'{"ttl": -1, "token_ttl": 0}', id="non-positive-duration"),
    pytest.param(b'{"name": "x", "name": "y"}', id="duplicate-keys"),
    pytest.param(
        b'{"ca_id": "00000000-0000-0000-0000-000000000000", "policy_id": 7}', id="odd-ids"
    ),
    pytest.param(b'{"parent_ca_id": "../../etc/passwd", "type": "intermediate"}', id="odd-parent"),
    pytest.param(
        b'{"certificate": "-----BEGIN CERTIFICATE-----\\n\\u0000\\n", '
        b'"private_key": "\\u0000", "name": "x"}',
        id="nul-in-pem",
    ),
    pytest.param('{"name": "\u2603\U0001f600 \u202e"}'.encode(), id="unicode"),
]


@pytest.mark.parametrize("body", ODD_BODIES)
async def test_odd_bodies_never_500(
    admin: httpx.AsyncClient, api_app: Any, world: dict[str, Any], body: bytes
) -> None:
    snapshot = await _snapshot(admin, _reads(world))
    changed = False
    for method, url in _writes(world):
        r = await admin.request(
            method, url, content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code < 500, (method, url, r.status_code, r.text[:500])
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
            assert r.json()["status"] == r.status_code
        elif method in ("PATCH", "PUT"):
            changed = True  # a valid edit (say, {"name": "y"}) did what it says
    if not changed:
        after = await _snapshot(admin, _reads(world))
        for old, new in zip(snapshot, after, strict=True):
            if isinstance(old, dict):
                # PATCH {} touches updated_at; POST .../tokens {} adds a token: both valid.
                for key in ("updated_at", "tokens"):
                    old.pop(key, None)
                    new.pop(key, None)
            assert old == new


async def test_nul_characters_are_named(admin: httpx.AsyncClient, api_app: Any) -> None:
    before = await _counts(api_app)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/identities", {"name": "a\x00b"}, "name"),
        ("/applications", {"slug": uid(), "name": "a\x00b"}, "name"),
        ("/applications", {"slug": uid(), "name": "x", "description": "\x00"}, "description"),
        ("/policies", {"name": "a\x00b"}, "name"),
        (
            "/policies",
            {"name": uid(), "subject": {"organization": {"allowed": ["\x00"]}}},
            "subject.organization.allowed",
        ),
        (
            "/policies",
            {"name": uid(), "sans": {"email": {"allowed": ["*@\x00"]}}},
            "sans.email.allowed",
        ),
        ("/cas", root_body(subject={"common_name": "a\x00b"}), "subject.common_name"),
        ("/cas", root_body(name="a\x00b"), "name"),
    ]
    for path, body, field in cases:
        problem(await admin.post(f"{API}{path}", json=body), 422, field)
    assert await _counts(api_app) == before


@pytest.mark.parametrize(
    "path",
    [
        "/applications/a%00b",
        "/applications/a%00b/members",
        "/profiles/a%00b",
        "/applications/%F0%9F%98%80",
        "/applications/" + "x" * 3000,
        "/applications/..%2F..%2Fetc",
        "/cas/a%00b",
    ],
)
async def test_odd_paths_never_500(admin: httpx.AsyncClient, path: str) -> None:
    r = await admin.get(f"{API}{path}")
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)


async def test_body_over_the_limit_is_413(admin: httpx.AsyncClient, api_app: Any) -> None:
    limit = api_app.state.certforge.settings.max_body_bytes
    assert limit == 256 * 1024
    before = await _counts(api_app)
    name = uid("big")
    big = b'{"name": "' + name.encode() + b'", "description": "' + b"d" * limit + b'"}'
    r = await admin.post(
        f"{API}/policies", content=big, headers={"Content-Type": "application/json"}
    )
    body = problem(r, 413)
    assert str(limit) in body["detail"]

    # Without a Content-Length (chunked), the limit holds as the body streams in.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 16384):
            yield big[start : start + 16384]

    r = await admin.post(
        f"{API}/applications", content=chunks(), headers={"Content-Type": "application/json"}
    )
    problem(r, 413)
    r = await admin.post(
        f"{API}/policies",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "abc"},
    )
    assert r.status_code in (400, 413)
    assert await _counts(api_app) == before
    assert name not in {p["name"] for p in await every(admin, f"{API}/policies")}
    # Just under the limit is judged on its content instead (a 1024-character maximum).
    r = await admin.post(
        f"{API}/policies",
        json={"name": uid(), "description": "d" * (limit - 1000)},
    )
    problem(r, 422, "description")


async def test_wrong_content_type_and_method(admin: httpx.AsyncClient, api_app: Any) -> None:
    before = await _counts(api_app)
    r = await admin.post(
        f"{API}/applications",
        content=b"slug=x&name=y",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    r = await admin.post(
        f"{API}/applications",
        content=b'{"slug": "' + uid().encode() + b'", "name": "y"}',
        headers={"Content-Type": "text/plain"},
    )
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert await _counts(api_app) == before
    problem(await admin.get(f"{API}/no-such-thing"), 404)
    problem(await admin.delete(f"{API}/cas"), 405)
    problem(await admin.put(f"{API}/policies"), 405)


async def test_invalid_duration_names_validity(admin: httpx.AsyncClient) -> None:
    body = root_body(validity="10 years")
    err = problem(await admin.post(f"{API}/cas", json=body), 422, "validity")
    assert "10 years" in err["detail"]
    names = {c["name"] for c in await every(admin, f"{API}/cas")}
    assert body["name"] not in names


async def test_request_id_is_echoed(admin: httpx.AsyncClient) -> None:
    r = await admin.get(f"{API}/applications/{uid()}", headers={"X-Request-Id": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    assert problem(r, 404, "app")["request_id"] == "trace-42"
    for odd in ("x" * 500, "a\tb"):
        r = await admin.get(f"{API}/applications/{uid()}", headers={"X-Request-Id": odd})
        echoed = r.headers["x-request-id"]
        assert echoed == problem(r, 404)["request_id"]
        assert len(echoed) <= 64
        assert echoed.isprintable()
