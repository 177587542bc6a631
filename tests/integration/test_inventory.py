"""Issue 4, inventory and downloads: search one application's certificates with filters, sorts
and keyset pages whose total never moves; search across applications (product admins: all;
others: where they hold a role); tenant isolation (404, never another tenant's data); DER and
password-protected PKCS#12 downloads (managed keys only, operators and admins only, audited).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from admin_kit import (
    API,
    ClientFor,
    create_identity,
    create_profile,
    ok,
    problem,
    put_member,
    uid,
)
from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.common.template import San
from issuance_kit import Enrollment, audit_events, enroll, issue, member, pem_blocks, spki

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"


@dataclass
class World:
    a: Enrollment
    b: Enrollment
    second_profile: str  # another profile attached to `a`
    run: str  # a metadata tag on every certificate of this module: `run:<run>`
    operator: httpx.AsyncClient  # operator of a
    auditor: httpx.AsyncClient  # auditor of a
    outsider: httpx.AsyncClient  # operator of b, nothing in a
    both: httpx.AsyncClient  # auditor of a and of b
    nobody: httpx.AsyncClient  # no role anywhere
    ids: dict[str, str]  # name -> certificate id ("b:web1" for b's)
    pems: dict[str, dict[str, Any]]  # name -> the issued certificate object


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(admin: httpx.AsyncClient, client_for: ClientFor) -> World:
    a = await enroll(admin)
    b = await enroll(admin)
    second = await create_profile(admin, a.issuing["id"], a.policy["id"])
    profile_url = f"{API}/applications/{a.app}/profiles/{second['slug']}"
    ok(await admin.put(profile_url), 201)
    ok(await admin.put(f"{profile_url}/enrollment/api", json={"enabled": True}))
    operator = await member(admin, client_for, a.app, "operator")
    auditor = await member(admin, client_for, a.app, "auditor")
    outsider = await member(admin, client_for, b.app, "operator")
    nobody = client_for((await create_identity(admin))["token"])
    run = uid("run")
    ids: dict[str, str] = {}
    pems: dict[str, dict[str, Any]] = {}

    async def make(
        name: str, enrollment: Enrollment, client: httpx.AsyncClient, **fields: Any
    ) -> None:
        metadata = {"run": run, **fields.pop("metadata", {})}
        body = await issue(client, enrollment, metadata=metadata, **fields)
        ids[name] = body["certificate"]["id"]
        pems[name] = body["certificate"]

    await make(
        "web1",
        a,
        operator,
        common_name="web1.example.com",
        sans=[{"type": "dns", "value": "web1.example.com"}, {"type": "ip", "value": "10.1.2.3"}],
        ttl="10d",
        metadata={"team": "payments", "env": "prod"},
    )
    await make(
        "web2",
        a,
        operator,
        common_name="web2.example.com",
        key_algorithm="RSA_2048",
        ttl="20d",
        metadata={"team": "payments", "env": "staging"},
    )
    await make(
        "api",
        a,
        operator,
        common_name="api.example.com",
        sans=[{"type": "dns", "value": "gateway.example.com"}],
        ttl="30d",
        metadata={"team": "search"},
    )
    await make(
        "other", a, operator, profile=second["slug"], common_name="other.example.com", ttl="40d"
    )
    csr = build_csr(
        generate_private_key(KeyAlgorithm.EC_P256),
        SubjectFields(common_name="csr.example.com"),
        [San(type="dns", value="csr.example.com")],
    )
    await make("csr", a, operator, method="csr", csr=csr_to_pem(csr), ttl="7d")
    await make("b:web1", b, outsider, common_name="web1.example.com", ttl="11d")
    revoke = f"{a.certificates}/{ids['web2']}/revoke"
    ok(await operator.post(revoke, json={"reason": "superseded"}))
    identity = await create_identity(admin)  # an auditor of both applications
    for app in (a.app, b.app):
        await put_member(admin, app, identity["id"], "auditor")
    both = client_for(identity["token"])
    return World(
        a=a,
        b=b,
        second_profile=second["slug"],
        run=run,
        operator=operator,
        auditor=auditor,
        outsider=outsider,
        both=both,
        nobody=nobody,
        ids=ids,
        pems=pems,
    )


def _names(world: World, page: dict[str, Any]) -> list[str]:
    by_id = {v: k for k, v in world.ids.items()}
    return [by_id[item["id"]] for item in page["items"]]


async def _list(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = ok(await client.get(url, params=params))
    return page


# --- one application -----------------------------------------------------------------------------


async def test_default_lists_soonest_expiry_first(world: World) -> None:
    page = await _list(world.auditor, world.a.certificates)
    assert _names(world, page) == ["csr", "web1", "web2", "api", "other"]
    assert page["total"] == 5
    assert page["next_cursor"] is None
    item = page["items"][1]
    assert item["application"] == world.a.app
    assert item["metadata"] == {"run": world.run, "team": "payments", "env": "prod"}
    assert item["has_private_key"] is True
    assert "private_key" not in item
    revoked = page["items"][2]
    assert revoked["status"] == "revoked"
    assert revoked["revocation_reason"] == "superseded"


def _in(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"status": "revoked"}, ["web2"], id="ok/status"),
        pytest.param({"status": ["active", "revoked"]}, ["csr", "web1", "web2", "api", "other"],
                     id="ok/status-repeated"),
        pytest.param({"status": "expired"}, [], id="ok/status-none"),
        pytest.param({"q": "WEB1.example"}, ["web1"], id="ok/q-common-name-any-case"),
        pytest.param({"q": "gateway"}, ["api"], id="ok/q-dns-san"),
        pytest.param({"q": "10.1.2"}, ["web1"], id="ok/q-ip-san"),
        pytest.param({"q": "%"}, [], id="ok/q-wildcards-are-literal"),
        pytest.param({"q": "value"}, [], id="ok/q-not-json-keys"),
        pytest.param({"key_algorithm": "RSA_2048"}, ["web2"], id="ok/key-algorithm"),
        pytest.param({"tag": "team:payments"}, ["web1", "web2"], id="ok/tag"),
        pytest.param({"tag": ["team:payments", "env:prod"]}, ["web1"], id="ok/tags-all"),
        pytest.param({"tag": "env"}, ["web1", "web2"], id="ok/tag-key-only"),
        pytest.param({"tag": "team:nobody"}, [], id="ok/tag-no-match"),
        pytest.param({"expires_before": "15d"}, ["csr", "web1"], id="ok/expires-before"),
        pytest.param({"expires_after": "25d"}, ["api", "other"], id="ok/expires-after"),
        pytest.param({"expires_after": "15d", "expires_before": "35d"}, ["web2", "api"],
                     id="ok/expires-window"),
        pytest.param({"q": "example", "status": "active", "tag": "team:payments"}, ["web1"],
                     id="ok/combined"),
    ],
)  # fmt: skip
async def test_filters(world: World, params: dict[str, Any], expected: list[str]) -> None:
    params = {k: _in(int(v[:-1])) if k.startswith("expires_") else v for k, v in params.items()}
    page = await _list(world.operator, world.a.certificates, **params)
    assert _names(world, page) == expected
    assert page["total"] == len(expected)


async def test_profile_filter(world: World) -> None:
    page = await _list(world.auditor, world.a.certificates, profile=world.second_profile)
    assert _names(world, page) == ["other"]
    page = await _list(world.auditor, world.a.certificates, profile=world.a.profile_id)
    assert _names(world, page) == ["csr", "web1", "web2", "api"]


def _sort_key(item: dict[str, Any], column: str) -> tuple[datetime, UUID]:
    return datetime.fromisoformat(item[column]), UUID(item["id"])


@pytest.mark.parametrize(
    "sort",
    [
        pytest.param("not_after", id="ok/not_after"),
        pytest.param("-not_after", id="ok/-not_after"),
        pytest.param("created_at", id="ok/created_at"),
        pytest.param("-created_at", id="ok/-created_at"),
    ],
)
async def test_sorts_and_pages(world: World, sort: str) -> None:
    """Ordered by the column, ties (created_at has whole seconds) broken by id; the pages of
    two add up to the one long page."""
    page = await _list(world.auditor, world.a.certificates, sort=sort)
    column = sort.removeprefix("-")
    items = page["items"]
    assert len(items) == 5
    ordered = sorted(items, key=lambda i: _sort_key(i, column), reverse=sort.startswith("-"))
    assert [i["id"] for i in items] == [i["id"] for i in ordered]
    if column == "not_after":  # distinct TTLs: the order is known in advance
        expected = ["csr", "web1", "web2", "api", "other"]
        assert _names(world, page) == (expected[::-1] if sort.startswith("-") else expected)
    expected = _names(world, page)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await _list(world.auditor, world.a.certificates, **params)
        assert page["total"] == 5, page
        assert len(page["items"]) <= 2
        seen += _names(world, page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


async def test_pages_stay_stable_while_certificates_are_issued(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    """Keyset pages: certificates issued between pages never shift or repeat others; one that
    sorts after the cursor shows up on the next page, one before it does not; the total
    counts both."""
    c = await enroll(admin)
    operator = await member(admin, client_for, c.app, "operator")

    async def make(ttl: str) -> str:
        body = await issue(operator, c, common_name=f"t{ttl}.example.com", ttl=ttl)
        return str(body["certificate"]["id"])

    one, two, three = [await make(ttl) for ttl in ("1d", "2d", "3d")]
    first = await _list(operator, c.certificates, limit=2)
    assert [item["id"] for item in first["items"]] == [one, two]
    assert first["total"] == 3
    four, _half = await make("4d"), await make("12h")
    rest = await _list(operator, c.certificates, limit=10, cursor=first["next_cursor"])
    assert [item["id"] for item in rest["items"]] == [three, four]
    assert rest["total"] == 5
    assert rest["next_cursor"] is None


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        pytest.param({"limit": 0}, 422, "limit", id="fail/limit-0"),
        pytest.param({"limit": 501}, 422, "limit", id="fail/limit-501"),
        pytest.param({"status": "bogus"}, 422, "status.0", id="fail/status"),
        pytest.param({"sort": "serial"}, 422, "sort", id="fail/sort"),
        pytest.param({"key_algorithm": "DSA"}, 422, "key_algorithm", id="fail/key-algorithm"),
        pytest.param({"q": "a\x00b"}, 422, "q", id="fail/q-nul"),
        pytest.param({"q": ""}, 422, "q", id="fail/q-empty"),
        pytest.param({"tag": "bad key:x"}, 422, "tag.0", id="fail/tag-key"),
        pytest.param({"tag": ":x"}, 422, "tag.0", id="fail/tag-empty-key"),
        pytest.param({"expires_before": "2030-01-01T00:00:00"}, 422, "expires_before",
                     id="fail/naive-time"),
        pytest.param({"expires_after": "soon"}, 422, "expires_after", id="fail/not-a-time"),
        pytest.param({"cursor": "garbage"}, 400, "cursor", id="fail/cursor"),
        pytest.param({"profile": "no-such-profile"}, 404, "profile", id="fail/unknown-profile"),
    ],
)  # fmt: skip
async def test_bad_input(world: World, params: dict[str, Any], status: int, field: str) -> None:
    r = await world.operator.get(world.a.certificates, params=params)
    problem(r, status, field)


async def test_cursor_of_another_sort_is_refused(world: World) -> None:
    page = await _list(world.auditor, world.a.certificates, limit=1)
    r = await world.auditor.get(
        world.a.certificates, params={"cursor": page["next_cursor"], "sort": "-created_at"}
    )
    problem(r, 400, "cursor")


# --- tenants and cross-application search -------------------------------------------------------


async def test_tenant_isolation(world: World, anonymous: httpx.AsyncClient) -> None:
    problem(await world.outsider.get(world.a.certificates), 404, "app")
    problem(await world.nobody.get(world.a.certificates), 404, "app")
    problem(await anonymous.get(world.a.certificates), 401)
    page = await _list(world.operator, world.a.certificates, q="web1")
    assert _names(world, page) == ["web1"]  # b's web1 is never listed in a
    page = await _list(world.outsider, world.b.certificates)
    assert _names(world, page) == ["b:web1"]
    problem(await world.outsider.get(f"{API}/certificates", params={"application": world.a.app}),
            404, "app")  # fmt: skip


@pytest.mark.parametrize(
    ("who", "application", "expected"),
    [
        pytest.param("admin", None, ["csr", "web1", "b:web1", "web2", "api", "other"],
                     id="ok/admin-all"),
        pytest.param("both", None, ["csr", "web1", "b:web1", "web2", "api", "other"],
                     id="ok/auditor-of-both"),
        pytest.param("auditor", None, ["csr", "web1", "web2", "api", "other"], id="ok/auditor-a"),
        pytest.param("outsider", None, ["b:web1"], id="ok/operator-b"),
        pytest.param("nobody", None, [], id="ok/no-role"),
        pytest.param("admin", "b", ["b:web1"], id="ok/admin-one-app"),
        pytest.param("both", "a", ["csr", "web1", "web2", "api", "other"], id="ok/both-one-app"),
    ],
)  # fmt: skip
async def test_search_across_applications(
    world: World,
    admin: httpx.AsyncClient,
    who: str,
    application: str | None,
    expected: list[str],
) -> None:
    client = admin if who == "admin" else getattr(world, who)
    params: dict[str, Any] = {"tag": f"run:{world.run}", "status": ["active", "revoked"]}
    if application is not None:
        params["application"] = getattr(world, application).app
    page = await _list(client, f"{API}/certificates", **params)
    assert _names(world, page) == expected
    assert page["total"] == len(page["items"])
    if who == "admin" and application is None:
        apps = {item["application"] for item in page["items"]}
        assert apps == {world.a.app, world.b.app}
    # Paging across applications too.
    paged: list[str] = []
    cursor = None
    while True:
        step: dict[str, Any] = {**params, "limit": 2}
        if cursor:
            step["cursor"] = cursor
        page = await _list(client, f"{API}/certificates", **step)
        paged += _names(world, page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == expected


# --- downloads ----------------------------------------------------------------------------------


async def test_der_download(world: World) -> None:
    r = await world.auditor.get(f"{world.a.certificates}/{world.ids['web1']}/der")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pkix-cert"
    cert = x509.load_der_x509_certificate(r.content)
    assert cert == x509.load_pem_x509_certificate(world.pems["web1"]["certificate"].encode())
    problem(await world.outsider.get(f"{world.a.certificates}/{world.ids['web1']}/der"), 404)
    problem(await world.auditor.get(f"{world.a.certificates}/{world.ids['b:web1']}/der"), 404)


def _openssl_pkcs12_info(
    data: bytes, password: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bundle.p12"
    path.write_bytes(data)
    return subprocess.run(
        ["openssl", "pkcs12", "-info", "-nokeys", "-in", str(path), "-passin", f"pass:{password}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_pkcs12_round_trip(world: World, api_app: Any, tmp_path: Path) -> None:
    url = f"{world.a.certificates}/{world.ids['web1']}/pkcs12"
    r = await world.operator.post(url, json={"password": PASSWORD, "include_chain": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-pkcs12"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["cache-control"] == "no-store"
    key, cert, chain = pkcs12.load_key_and_certificates(r.content, PASSWORD.encode())
    issued = world.pems["web1"]
    assert cert == x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert key is not None
    assert spki(key.public_key()) == spki(cert.public_key())
    expected_chain = [
        x509.load_pem_x509_certificate(p.encode()) for p in pem_blocks(issued["chain"])
    ]
    assert chain == expected_chain
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(r.content, b"wrong password")

    result = _openssl_pkcs12_info(r.content, PASSWORD, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MAC: sha256" in result.stderr, result.stderr
    assert "AES-256-CBC" in result.stderr, result.stderr
    assert result.stdout.count("BEGIN CERTIFICATE") == 3, result.stdout
    assert _openssl_pkcs12_info(r.content, "wrong password", tmp_path).returncode != 0

    entries = await audit_events(
        api_app, action="certificate.pkcs12", resource_id=world.ids["web1"]
    )
    assert len(entries) == 1
    assert entries[0].outcome == "success"
    assert entries[0].details["private_key"] == "read"
    assert entries[0].application_id == UUID(world.a.app_id)


async def test_pkcs12_without_chain_and_for_product_admin(
    world: World, admin: httpx.AsyncClient
) -> None:
    url = f"{world.a.certificates}/{world.ids['api']}/pkcs12"
    r = await admin.post(url, json={"password": PASSWORD, "include_chain": False})
    assert r.status_code == 200, r.text
    key, cert, chain = pkcs12.load_key_and_certificates(r.content, PASSWORD.encode())
    assert key is not None
    assert cert is not None
    assert chain == []
    assert (
        cert.public_bytes(serialization.Encoding.PEM).decode() == world.pems["api"]["certificate"]
    )


@pytest.mark.parametrize(
    ("who", "name", "body", "status", "field"),
    [
        pytest.param("auditor", "web1", {"password": PASSWORD}, 403, None, id="fail/auditor"),
        pytest.param("outsider", "web1", {"password": PASSWORD}, 404, "app", id="fail/outsider"),
        pytest.param("operator", "csr", {"password": PASSWORD}, 422, "certificate_id",
                     id="fail/csr-certificate"),
        pytest.param("operator", "b:web1", {"password": PASSWORD}, 404, "certificate_id",
                     id="fail/other-tenant"),
        pytest.param("operator", "web1", {"password": "short"}, 422, "password",
                     id="fail/short-password"),
        pytest.param("operator", "web1", {"password": "x" * 257}, 422, "password",
                     id="fail/long-password"),
        pytest.param("operator", "web1", {}, 422, "password", id="fail/no-password"),
        pytest.param("operator", "web1", {"password": PASSWORD, "format": "pfx"}, 422, "format",
                     id="fail/unknown-field"),
    ],
)  # fmt: skip
async def test_pkcs12_refusals(
    world: World, who: str, name: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    client: httpx.AsyncClient = getattr(world, who)
    r = await client.post(f"{world.a.certificates}/{world.ids[name]}/pkcs12", json=body)
    problem(r, status, *([field] if field else []))
    assert "short" not in r.text or body.get("password") != "short"  # never echoes the password
    assert PASSWORD not in r.text
