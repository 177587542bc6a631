"""The issue's "Shapes" section, request by request, as the README's curl walk-through does it.

Names get a random suffix (the session shares one database); every other field is the
issue's example verbatim.
"""

from __future__ import annotations

import httpx
import pytest
from cryptography import x509

from admin_kit import API, ClientFor, every, ok, uid
from pki_tools import openssl_verify, pkilint_errors

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_the_issue_walkthrough(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    # POST /identities {"name": "ci-bot"} -> 201 {"id", "name", "token"}
    r = await admin.post(f"{API}/identities", json={"name": uid("ci-bot")})
    bot = ok(r, 201)
    assert {"id", "name", "token"} <= set(bot)
    assert bot["token"].startswith("cf_")
    assert len(bot["token"]) > 40
    assert bot["product_admin"] is False

    # POST /cas root -> 201 {"id", "name", "type", "status", "certificate" (PEM), ...}
    root_name = uid("root")
    r = await admin.post(
        f"{API}/cas",
        json={
            "name": root_name,
            "type": "root",
            "subject": {"common_name": "Example Root CA", "organization": "Example"},
            "key_algorithm": "EC_P256",
            "validity": "10y",
            "max_path_length": 1,
        },
    )
    root = ok(r, 201)
    assert root["name"] == root_name
    assert root["type"] == "root"
    assert root["status"] == "active"
    assert root["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert root["max_path_length"] == 1
    assert root["key_algorithm"] == "EC_P256"
    assert root["parent_ca_id"] is None
    assert root["chain"] == ""
    assert "CN=Example Root CA" in root["subject"]
    assert "O=Example" in root["subject"]
    assert r.headers["content-type"].startswith("application/json")
    cert = x509.load_pem_x509_certificate(root["certificate"].encode())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days == 3650
    assert format(cert.serial_number, "x") == root["serial_number"]

    # POST /cas intermediate
    r = await admin.post(
        f"{API}/cas",
        json={
            "name": uid("issuing"),
            "type": "intermediate",
            "parent_ca_id": root["id"],
            "subject": {"common_name": "Example Issuing CA", "organization": "Example"},
            "key_algorithm": "EC_P256",
            "validity": "5y",
            "max_path_length": 0,
        },
    )
    issuing = ok(r, 201)
    assert issuing["type"] == "intermediate"
    assert issuing["parent_ca_id"] == root["id"]
    assert issuing["max_path_length"] == 0
    assert issuing["chain"] == root["certificate"]
    openssl_verify(root["certificate"], [], issuing["certificate"])
    assert pkilint_errors(root["certificate"]) == ""
    assert pkilint_errors(issuing["certificate"]) == ""

    # POST /policies
    policy_name = uid("web")
    r = await admin.post(
        f"{API}/policies",
        json={
            "name": policy_name,
            "subject": {"common_name": {"allowed": ["*.example.com", "example.com"]}},
            "sans": {
                "dns": {"allowed": ["*.example.com", "example.com"]},
                "ip": {"allowed": ["10.0.0.0/8"]},
            },
            "key_algorithms": ["EC_P256", "EC_P384", "RSA_2048", "RSA_3072", "ED25519"],
            "key_usages": {"allowed": ["digital_signature", "key_encipherment"]},
            "extended_key_usages": {"allowed": ["server_auth", "client_auth"]},
            "max_validity": "90d",
        },
    )
    policy = ok(r, 201)
    assert policy["name"] == policy_name
    assert policy["max_validity"] == "90d"
    assert policy["sans"]["dns"]["allowed"] == ["*.example.com", "example.com"]
    assert policy["sans"]["ip"]["allowed"] == ["10.0.0.0/8"]
    assert policy["subject"]["common_name"]["allowed"] == ["*.example.com", "example.com"]
    assert policy["key_algorithms"] == ["EC_P256", "EC_P384", "RSA_2048", "RSA_3072", "ED25519"]
    assert policy["key_usages"]["allowed"] == ["digital_signature", "key_encipherment"]
    assert policy["extended_key_usages"]["allowed"] == ["server_auth", "client_auth"]
    assert policy["allow_ca"] is False

    # POST /profiles
    slug = uid("web-server")
    r = await admin.post(
        f"{API}/profiles",
        json={
            "slug": slug,
            "ca_id": issuing["id"],
            "policy_id": policy["id"],
            "defaults": {
                "ttl": "30d",
                "key_algorithm": "EC_P256",
                "key_usages": ["digital_signature"],
                "extended_key_usages": ["server_auth"],
            },
        },
    )
    profile = ok(r, 201)
    assert profile["slug"] == slug
    assert profile["ca_id"] == issuing["id"]
    assert profile["policy_id"] == policy["id"]
    assert profile["defaults"]["ttl"] == "30d"
    assert profile["defaults"]["key_algorithm"] == "EC_P256"
    assert profile["defaults"]["key_usages"] == ["digital_signature"]
    assert profile["defaults"]["extended_key_usages"] == ["server_auth"]

    # POST /applications
    shop = uid("shop")
    app = ok(await admin.post(f"{API}/applications", json={"slug": shop, "name": "Shop"}), 201)
    assert app["slug"] == shop
    assert app["name"] == "Shop"
    assert app["description"] == ""

    # PUT /applications/shop/members/<identity id> {"role": "operator"}
    r = await admin.put(f"{API}/applications/{shop}/members/{bot['id']}", json={"role": "operator"})
    member = ok(r, 201)
    assert member == {**member, "identity_id": bot["id"], "role": "operator"}
    # Idempotent: the same PUT again is 200.
    r = await admin.put(f"{API}/applications/{shop}/members/{bot['id']}", json={"role": "operator"})
    ok(r, 200)

    # PUT /applications/shop/profiles/web-server (attach by slug)
    attached = ok(await admin.put(f"{API}/applications/{shop}/profiles/{slug}"), 201)
    assert attached["profile"] == slug
    assert attached["profile_id"] == profile["id"]
    assert attached["application_id"] == app["id"]
    assert attached["api"]["enabled"] is False
    ok(await admin.put(f"{API}/applications/{shop}/profiles/{slug}"), 200)

    # PUT .../enrollment/api
    r = await admin.put(
        f"{API}/applications/{shop}/profiles/{slug}/enrollment/api",
        json={"enabled": True, "auto_renew": True, "renew_before_days": 10},
    )
    enrolled = ok(r)
    assert enrolled["api"] == {"enabled": True, "auto_renew": True, "renew_before_days": 10}
    got = ok(await admin.get(f"{API}/applications/{shop}/profiles/{slug}/enrollment/api"))
    assert got == {"enabled": True, "auto_renew": True, "renew_before_days": 10}

    # The bot's token works and shows its membership.
    bot_client = client_for(bot["token"])
    me = ok(await bot_client.get(f"{API}/me"))
    assert me["id"] == bot["id"]
    assert me["memberships"] == [
        {"application_id": app["id"], "application": shop, "role": "operator"}
    ]
    assert [a["slug"] for a in await every(bot_client, f"{API}/applications")] == [shop]


@pytest.mark.parametrize("by", ["slug", "id"])
async def test_applications_and_profiles_by_slug_or_id(admin: httpx.AsyncClient, by: str) -> None:
    root = ok(await admin.post(f"{API}/cas", json=_root()), 201)
    policy = ok(await admin.post(f"{API}/policies", json={"name": uid("any")}), 201)
    profile = ok(
        await admin.post(
            f"{API}/profiles",
            json={"slug": uid("p"), "ca_id": root["id"], "policy_id": policy["id"]},
        ),
        201,
    )
    app = ok(await admin.post(f"{API}/applications", json={"slug": uid("a"), "name": "A"}), 201)
    a, p = app[by], profile[by]

    assert ok(await admin.get(f"{API}/applications/{a}"))["id"] == app["id"]
    assert ok(await admin.get(f"{API}/profiles/{p}"))["id"] == profile["id"]
    ok(await admin.put(f"{API}/applications/{a}/profiles/{p}"), 201)
    assert (
        ok(await admin.get(f"{API}/applications/{a}/profiles/{p}"))["profile_id"] == profile["id"]
    )
    listed = ok(await admin.get(f"{API}/applications/{a}/profiles"))
    assert [x["profile"] for x in listed] == [profile["slug"]]
    r = await admin.put(
        f"{API}/applications/{a}/profiles/{p}/enrollment/api",
        json={"enabled": True},
    )
    assert ok(r)["api"] == {"enabled": True, "auto_renew": True, "renew_before_days": 30}
    patched = ok(await admin.patch(f"{API}/applications/{a}", json={"description": "d"}))
    assert patched["description"] == "d"
    assert patched["name"] == "A"
    ok(await admin.patch(f"{API}/profiles/{p}", json={"name": "renamed"}))
    assert ok(await admin.get(f"{API}/profiles/{profile['slug']}"))["name"] == "renamed"
    assert (await admin.delete(f"{API}/applications/{a}/profiles/{p}")).status_code == 204
    assert ok(await admin.get(f"{API}/applications/{a}/profiles")) == []
    assert (await admin.delete(f"{API}/profiles/{p}")).status_code == 204
    assert (await admin.get(f"{API}/profiles/{profile['id']}")).status_code == 404
    assert (await admin.delete(f"{API}/applications/{a}")).status_code == 204
    assert (await admin.get(f"{API}/applications/{app['slug']}")).status_code == 404


async def test_health(anonymous: httpx.AsyncClient) -> None:
    ready = {"status": "ok", "database": "ok", "nats": "ok", "streams": "ok"}
    assert ok(await anonymous.get("/readyz")) == ready
    assert ok(await anonymous.get("/livez")) == {"status": "ok"}
    # The deprecated alias keeps the meaning it had on the api: readiness.
    assert ok(await anonymous.get("/healthz")) == ready


async def test_openapi_document_is_served(anonymous: httpx.AsyncClient) -> None:
    document = ok(await anonymous.get("/openapi.json"))
    paths = document["paths"]
    for path in (
        "/api/v1/cas",
        "/api/v1/cas/{ca_id}/certificate",
        "/api/v1/policies/{policy_id}",
        "/api/v1/profiles/{profile}",
        "/api/v1/applications/{app}/members/{identity_id}",
        "/api/v1/applications/{app}/profiles/{profile}/enrollment/api",
        "/api/v1/audit-events",
    ):
        assert path in paths, path


def _root() -> dict[str, object]:
    return {
        "name": uid("root"),
        "type": "root",
        "subject": {"common_name": "Slug Test Root"},
        "validity": "1y",
    }
