"""The REST API around ACME: enrollment settings on an attached profile (and in the attach
call), EAB keys (the secret shown once, stored sealed, never logged or audited), roles and
tenancy. Accounts, orders and early renewal are in `test_acme_admin_reads.py`."""

from __future__ import annotations

import base64
import logging
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from sqlmodel import col, select

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_policy,
    create_profile,
    create_root,
    ok,
    problem,
)
from certforge.common.acme import b64url_decode, eab_key_aad
from certforge.common.db.tables import AcmeAccount, AcmeEabKey, AuditEvent
from issuance_kit import member

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

DEFAULTS = {
    "enabled": False,
    "eab_required": False,
    "challenge_types": ["http-01", "dns-01", "tls-alpn-01"],
    "renew_before_days": 30,
    "terms_of_service": None,
    "website": None,
}
JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
FULL = {
    "enabled": True,
    "eab_required": True,
    "challenge_types": ["dns-01", "http-01"],
    "renew_before_days": 12,
    "terms_of_service": "https://pki.example.com/terms?v=2",
    "website": "http://pki.example.com:8080/",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def profiles(admin: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two profiles: the first is attached in each test, the second never is."""
    root = await create_root(admin)
    policy = await create_policy(admin)
    return (
        await create_profile(admin, root["id"], policy["id"]),
        await create_profile(admin, root["id"], policy["id"]),
    )


async def attached_app(admin: httpx.AsyncClient, profile: dict[str, Any]) -> str:
    app = await create_application(admin)
    ok(await admin.put(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"), 201)
    return str(app["slug"])


def enrollment_url(app: str, profile: str) -> str:
    return f"{API}/applications/{app}/profiles/{profile}/enrollment/acme"


async def test_settings_default_set_and_shown_on_the_attachment(
    admin: httpx.AsyncClient, profiles: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    profile = profiles[0]
    app = await attached_app(admin, profile)
    url = enrollment_url(app, profile["slug"])
    directory = f"http://certforge.test/acme/{app}/{profile['slug']}/directory"

    assert ok(await admin.get(url)) == {**DEFAULTS, "directory_url": directory}
    attachment = ok(await admin.get(f"{API}/applications/{app}/profiles/{profile['slug']}"))
    assert attachment["acme"] == {**DEFAULTS, "directory_url": directory}
    assert attachment["acme_enabled"] is False

    put = ok(await admin.put(url, json=FULL))
    assert put["acme"] == {**FULL, "directory_url": directory}
    assert put["acme_enabled"] is True
    assert put["api"]["enabled"] is False, "API enrollment is left alone"
    assert ok(await admin.get(url)) == {**FULL, "directory_url": directory}
    listed = ok(await admin.get(f"{API}/applications/{app}/profiles"))
    assert [a["acme"] for a in listed] == [{**FULL, "directory_url": directory}]
    # Attaching again (no body) keeps the settings; by id the URL still names the slugs.
    again = ok(await admin.put(f"{API}/applications/{app}/profiles/{profile['id']}"), 200)
    assert again["acme"] == {**FULL, "directory_url": directory}
    by_id = ok(await admin.get(enrollment_url(app, profile["id"])))
    assert by_id["directory_url"] == directory

    # Only `enabled` is required: the rest go back to their defaults.
    assert ok(await admin.put(url, json={"enabled": True}))["acme"] == {
        **DEFAULTS,
        "enabled": True,
        "directory_url": directory,
    }
    entries = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"application": app, "action": "application.enrollment.acme.put"},
        )
    )["items"]
    assert [e["details"]["acme"] for e in entries] == [
        {**DEFAULTS, "enabled": True},
        FULL,
    ]
    assert {e["outcome"] for e in entries} == {"success"}


async def test_directory_url_follows_the_url_the_caller_used(
    admin: httpx.AsyncClient,
    client_for: ClientFor,
    backends: Any,
    profiles: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    profile = profiles[0]["slug"]
    app = await attached_app(admin, profiles[0])
    url = enrollment_url(app, profile)
    path = f"/acme/{app}/{profile}/directory"

    https = client_for(backends.admin_token)
    https.base_url = httpx.URL("https://pki.example.org:8443")
    assert ok(await https.get(url))["directory_url"] == f"https://pki.example.org:8443{path}"
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "acme.example.com, inner"}
    got = ok(await admin.get(url, headers=proxied))
    assert got["directory_url"] == f"https://acme.example.com{path}"
    # A malformed forwarded host or scheme is ignored, not echoed.
    odd = {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil/path?x"}
    got = ok(await admin.get(url, headers=odd))
    assert got["directory_url"] == f"http://certforge.test{path}"


_BAD = [
    pytest.param({}, "enabled", id="fail/missing-enabled"),
    pytest.param({"enabled": "maybe"}, "enabled", id="fail/enabled-not-bool"),
    pytest.param(
        {"enabled": True, "eab_required": "maybe"}, "eab_required", id="fail/eab-not-bool"
    ),
    pytest.param(
        {"enabled": True, "challenge_types": ["http-01", "smtp-01"]},
        "challenge_types.1",
        id="fail/unknown-challenge-type",
    ),
    pytest.param(
        {"enabled": True, "challenge_types": []}, "challenge_types", id="fail/no-challenge-type"
    ),
    pytest.param(
        {"enabled": True, "challenge_types": ["dns-01", "dns-01"]},
        "challenge_types",
        id="fail/duplicate-challenge-type",
    ),
    pytest.param(
        {"enabled": True, "challenge_types": "http-01"},
        "challenge_types",
        id="fail/challenge-types-not-a-list",
    ),
    pytest.param(
        {"enabled": True, "renew_before_days": 0}, "renew_before_days", id="fail/days-zero"
    ),
    pytest.param(
        {"enabled": True, "renew_before_days": 3651}, "renew_before_days", id="fail/days-too-many"
    ),
    pytest.param(
        {"enabled": True, "renew_before_days": "ten"}, "renew_before_days", id="fail/days-text"
    ),
    pytest.param(
        {"enabled": True, "terms_of_service": "ftp://example.com/terms"},
        "terms_of_service",
        id="fail/tos-ftp",
    ),
    pytest.param(
        {"enabled": True, "terms_of_service": "/terms"}, "terms_of_service", id="fail/tos-relative"
    ),
    pytest.param(
        {"enabled": True, "terms_of_service": "https://"}, "terms_of_service", id="fail/tos-no-host"
    ),
    pytest.param(
        {"enabled": True, "terms_of_service": "https://exa mple.com/"},
        "terms_of_service",
        id="fail/tos-space",
    ),
    pytest.param(
        {"enabled": True, "terms_of_service": "https://example.com:99999/"},
        "terms_of_service",
        id="fail/tos-bad-port",
    ),
    pytest.param(
        {"enabled": True, "terms_of_service": "https://" + "a" * 2050 + ".com/"},
        "terms_of_service",
        id="fail/tos-too-long",
    ),
    pytest.param(
        {"enabled": True, "website": "https://user:pw@example.com/"},
        "website",
        id="fail/website-credentials",
    ),
    pytest.param(
        {"enabled": True, "website": "https://example.com/\x00"}, "website", id="fail/website-nul"
    ),
    pytest.param({"enabled": True, "website": 42}, "website", id="fail/website-number"),
    pytest.param({"enabled": True, "eab": True}, "eab", id="fail/unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), _BAD)
async def test_bad_settings_are_422_on_their_field(
    admin: httpx.AsyncClient,
    profiles: tuple[dict[str, Any], dict[str, Any]],
    body: dict[str, Any],
    field: str,
) -> None:
    profile = profiles[0]["slug"]
    app = await attached_app(admin, profiles[0])
    url = enrollment_url(app, profile)
    problem(await admin.put(url, json=body), 422, field)
    # In the attach call the same errors are named under `acme`.
    attach = f"{API}/applications/{app}/profiles/{profile}"
    problem(await admin.put(attach, json={"acme": body}), 422, f"acme.{field}")
    assert ok(await admin.get(url))["enabled"] is False, "nothing changed"


async def test_unknown_or_unattached_profile_and_unknown_app(
    admin: httpx.AsyncClient, profiles: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    app = await attached_app(admin, profiles[0])
    unattached = profiles[1]["slug"]
    for profile in (unattached, "no-such-profile", str(UUID(int=7))):
        url = enrollment_url(app, profile)
        problem(await admin.get(url), 404, "profile")
        problem(await admin.put(url, json={"enabled": True}), 404, "profile")
        problem(await admin.post(f"{url}/eab-keys", json={}), 404, "profile")
        problem(await admin.get(f"{url}/eab-keys"), 404, "profile")
    url = enrollment_url("no-such-app", profiles[0]["slug"])
    problem(await admin.get(url), 404, "app")
    problem(await admin.put(url, json={"enabled": True}), 404, "app")
    problem(await admin.post(f"{url}/eab-keys", json={}), 404, "app")


async def test_attach_with_acme_in_one_call(
    admin: httpx.AsyncClient, profiles: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    app = await create_application(admin)
    profile = profiles[0]["slug"]
    url = f"{API}/applications/{app['slug']}/profiles/{profile}"
    attached = ok(await admin.put(url, json={"api": {"enabled": True}, "acme": FULL}), 201)
    assert attached["acme"] == {
        **FULL,
        "directory_url": f"http://certforge.test/acme/{app['slug']}/{profile}/directory",
    }
    assert attached["acme_enabled"] is True
    assert attached["api"]["enabled"] is True
    # The same settings again: nothing changes; others update the attachment.
    same = ok(await admin.put(url, json={"acme": FULL}), 200)
    assert same["updated_at"] == attached["updated_at"]
    changed = ok(await admin.put(url, json={"acme": {"enabled": False}}), 200)
    assert changed["acme"]["enabled"] is False
    assert changed["acme"]["eab_required"] is False
    assert changed["api"]["enabled"] is True
    entries = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"application": app["slug"], "action": "application.profile.attach"},
        )
    )["items"]
    assert [e["details"].get("acme") for e in entries] == [{**DEFAULTS}, FULL]


async def test_roles_and_tenancy(
    admin: httpx.AsyncClient,
    client_for: ClientFor,
    profiles: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    profile = profiles[0]["slug"]
    app = await attached_app(admin, profiles[0])
    other = await attached_app(admin, profiles[0])
    url = enrollment_url(app, profile)
    app_admin = await member(admin, client_for, app, "application-admin")
    operator = await member(admin, client_for, app, "operator")
    auditor = await member(admin, client_for, app, "auditor")
    outsider = await member(admin, client_for, other, "application-admin")

    assert ok(await app_admin.put(url, json={"enabled": True}))["acme"]["enabled"] is True
    key = ok(await app_admin.post(f"{url}/eab-keys", json={"name": "ci"}), 201)
    for reader in (operator, auditor):
        assert ok(await reader.get(url))["enabled"] is True
        listed = ok(await reader.get(f"{url}/eab-keys"))
        assert [k["key_id"] for k in listed["items"]] == [key["key_id"]]
        assert ok(await reader.get(f"{url}/eab-keys/{key['key_id']}"))["status"] == "unused"
        problem(await reader.put(url, json={"enabled": False}), 403)
        problem(await reader.post(f"{url}/eab-keys", json={}), 403)
        problem(await reader.delete(f"{url}/eab-keys/{key['key_id']}"), 403)
    # Attaching (with settings) stays a product admin's business.
    problem(
        await app_admin.put(f"{API}/applications/{app}/profiles/{profile}", json={"acme": FULL}),
        403,
    )
    # Another application's admin learns nothing: 404 on the application, never 403.
    for method, path, body in (
        ("GET", url, None),
        ("PUT", url, {"enabled": False}),
        ("POST", f"{url}/eab-keys", {}),
        ("GET", f"{url}/eab-keys", None),
        ("GET", f"{url}/eab-keys/{key['key_id']}", None),
        ("DELETE", f"{url}/eab-keys/{key['key_id']}", None),
    ):
        problem(await outsider.request(method, path, json=body), 404, "app")
    # Through its own application, the other application's key id names nothing.
    other_url = enrollment_url(other, profile)
    problem(await outsider.get(f"{other_url}/eab-keys/{key['key_id']}"), 404, "key_id")
    problem(await outsider.delete(f"{other_url}/eab-keys/{key['key_id']}"), 404, "key_id")
    assert ok(await app_admin.get(f"{url}/eab-keys/{key['key_id']}"))["status"] == "unused"
    # Refusals are audited, as every refused change is.
    denied = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"application": app, "outcome": "denied", "limit": 50},
        )
    )["items"]
    assert {e["action"] for e in denied} >= {
        "application.enrollment.acme.put",
        "application.enrollment.acme.eab_key.create",
        "application.enrollment.acme.eab_key.revoke",
    }


async def test_eab_key_shown_once_sealed_never_logged(
    admin: httpx.AsyncClient,
    api_app: Any,
    caplog: pytest.LogCaptureFixture,
    profiles: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    caplog.set_level(logging.DEBUG)
    profile = profiles[0]
    app = await attached_app(admin, profile)
    url = f"{enrollment_url(app, profile['slug'])}/eab-keys"

    r = await admin.post(url, json={"name": "cert-manager prod"})
    created = ok(r, 201)
    assert set(created) == {"key_id", "hmac_key", "name", "created_at"}
    assert created["name"] == "cert-manager prod"
    assert r.headers["cache-control"] == "no-store"
    key_id, secret = created["key_id"], created["hmac_key"]
    assert len(key_id) == 22
    raw = b64url_decode(secret)
    assert len(raw) == 32
    location = r.headers["location"]
    assert location == f"{url}/{key_id}"
    shown = ok(await admin.get(location))
    assert shown["key_id"] == key_id
    assert shown["status"] == "unused"
    assert shown["account_id"] is None
    assert shown["revoked_at"] is None
    assert "hmac_key" not in shown
    second = ok(await admin.post(url), 201)  # no body: no name
    assert second["name"] == ""
    assert second["key_id"] != key_id
    assert second["hmac_key"] != secret

    listed = ok(await admin.get(url))["items"]
    assert [k["key_id"] for k in listed] == [second["key_id"], key_id]
    assert all(set(k) == set(shown) for k in listed)
    assert secret not in r.text.replace(secret, "", 1), "the secret appears once in its answer"

    context = api_app.state.certforge
    async with context.sessions() as session:
        row = (await session.exec(select(AcmeEabKey).where(AcmeEabKey.id == key_id))).one()
        entries = list(
            await session.exec(select(AuditEvent).where(col(AuditEvent.resource_id) == key_id))
        )
        everything = list(await session.exec(select(AuditEvent)))
    assert row.key_kek_id == context.leaf_keys.active_kid
    assert raw not in row.encrypted_hmac_key
    assert secret.encode() not in row.encrypted_hmac_key
    assert context.leaf_keys.decrypt(row.encrypted_hmac_key, eab_key_aad(key_id)) == raw
    assert str(row.created_by) == ok(await admin.get(f"{API}/me"))["id"]
    # The seal is bound to the key id: under another id it does not open.
    with pytest.raises(Exception, match=r"(?i)decrypt|authenticat|tag"):
        context.leaf_keys.decrypt(row.encrypted_hmac_key, eab_key_aad(second["key_id"]))
    assert [e.action for e in entries] == ["application.enrollment.acme.eab_key.create"]
    assert entries[0].status_code == 201
    standard = base64.b64encode(raw).decode()
    for text in (secret, standard, raw.hex()):
        assert not any(text in repr(e.details) for e in everything), "secret in the audit log"
        assert text not in caplog.text, "secret in the logs"


async def test_eab_keys_are_listed_in_pages_newest_first(
    admin: httpx.AsyncClient, profiles: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """EAB key ids are text, not UUIDs: the cursor carries one and reads it back."""
    profile = profiles[0]
    url = f"{enrollment_url(await attached_app(admin, profile), profile['slug'])}/eab-keys"
    made = [ok(await admin.post(url, json={"name": f"k{i}"}), 201)["key_id"] for i in range(3)]
    first = ok(await admin.get(url, params={"limit": 2}))
    assert [k["key_id"] for k in first["items"]] == made[::-1][:2]
    rest = ok(await admin.get(url, params={"limit": 2, "cursor": first["next_cursor"]}))
    assert [k["key_id"] for k in rest["items"]] == made[:1]
    assert rest["next_cursor"] is None
    problem(await admin.get(url, params={"cursor": "bm90IGEgY3Vyc29y"}), 400, "cursor")


async def test_revoke_eab_key(
    admin: httpx.AsyncClient, api_app: Any, profiles: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    profile = profiles[0]
    app = await attached_app(admin, profile)
    url = f"{enrollment_url(app, profile['slug'])}/eab-keys"
    unused = ok(await admin.post(url, json={"name": "unused"}), 201)["key_id"]
    bound = ok(await admin.post(url, json={"name": "bound"}), 201)["key_id"]

    # An ACME client binds `bound` to its new account (what the ACME endpoints write).
    async with api_app.state.certforge.sessions() as session:
        key = (await session.exec(select(AcmeEabKey).where(AcmeEabKey.id == bound))).one()
        account = AcmeAccount(
            application_id=key.application_id,
            profile_id=key.profile_id,
            jwk=JWK,
            jwk_thumbprint="kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
            eab_key_id=bound,
        )
        session.add(account)
        await session.flush()
        key.account_id = account.id
        key.bound_at = account.created_at
        session.add(key)
        await session.commit()
        account_id = account.id
    got = ok(await admin.get(f"{url}/{bound}"))
    assert got["status"] == "bound"
    assert got["account_id"] == str(account_id)

    for key_id in (unused, bound):
        assert (await admin.delete(f"{url}/{key_id}")).status_code == 204
        first = ok(await admin.get(f"{url}/{key_id}"))
        assert first["status"] == "revoked"
        assert first["revoked_at"] is not None
        # Revoking again is no error and keeps the first revocation's time.
        assert (await admin.delete(f"{url}/{key_id}")).status_code == 204
        assert ok(await admin.get(f"{url}/{key_id}"))["revoked_at"] == first["revoked_at"]
    assert ok(await admin.get(f"{url}/{bound}"))["account_id"] == str(account_id)
    # The account bound with the revoked key is left alone.
    got_account = ok(await admin.get(f"{API}/applications/{app}/acme/accounts/{account_id}"))
    assert got_account["status"] == "valid"
    assert got_account["eab_key_id"] == bound

    for key_id in ("no-such-key", "A" * 22, "a.b", "x" * 65, "%00"):
        problem(await admin.get(f"{url}/{key_id}"), 404, "key_id")
        problem(await admin.delete(f"{url}/{key_id}"), 404, "key_id")
    for body, field in (
        ({"name": "x" * 129}, "name"),
        ({"name": "bad\nname"}, "name"),
        ({"name": 5}, "name"),
        ({"label": "x"}, "label"),
    ):
        problem(await admin.post(url, json=body), 422, field)
    entries = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"application": app, "action": "application.enrollment.acme.eab_key.revoke"},
        )
    )["items"]
    assert len([e for e in entries if e["outcome"] == "success"]) == 4
    assert {e["resource_id"] for e in entries if e["outcome"] == "success"} == {unused, bound}
