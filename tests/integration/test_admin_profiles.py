"""Certificate profiles: a CA, a policy, and defaults that must satisfy the policy."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from admin_kit import (
    API,
    create_application,
    create_policy,
    create_profile,
    create_root,
    every,
    ok,
    problem,
    profile_body,
    uid,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ca_and_policy(admin: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    root = await create_root(admin)
    policy = await create_policy(
        admin,
        subject={
            "common_name": {"allowed": ["*.example.com"]},
            "organization": {"denied": ["Evil"]},
        },
        signature_hashes=["SHA256", "SHA384"],
    )
    return root, policy


async def _slugs(admin: httpx.AsyncClient) -> set[str]:
    return {p["slug"] for p in await every(admin, f"{API}/profiles")}


async def test_defaults_are_filled_in(
    admin: httpx.AsyncClient, ca_and_policy: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    root, policy = ca_and_policy
    r = await admin.post(
        f"{API}/profiles",
        json={"slug": uid("bare"), "ca_id": root["id"], "policy_id": policy["id"]},
    )
    profile = ok(r, 201)
    assert profile["defaults"] == {
        "ttl": "30d",
        "subject": {
            "common_name": None,
            "organization": None,
            "organizational_unit": None,
            "country": None,
            "state": None,
            "locality": None,
        },
        "key_algorithm": "EC_P256",
        "signature_algorithm": None,
        "key_usages": ["digital_signature"],
        "extended_key_usages": ["server_auth"],
    }
    assert profile["name"] == ""
    assert profile["description"] == ""
    full = await create_profile(
        admin,
        root["id"],
        policy["id"],
        name="Web",
        description="web servers",
        defaults={
            "ttl": "90d",
            "subject": {"organization": "Example", "country": "DE"},
            "key_algorithm": "RSA_3072",
            "signature_algorithm": "SHA384",
            "key_usages": ["digital_signature", "key_encipherment"],
            "extended_key_usages": ["server_auth", "client_auth"],
        },
    )
    assert full["defaults"]["subject"]["organization"] == "Example"
    assert full["defaults"]["signature_algorithm"] == "SHA384"
    assert ok(await admin.get(f"{API}/profiles/{full['slug']}")) == full
    assert ok(await admin.get(f"{API}/profiles/{full['id']}")) == full


@pytest.mark.parametrize(
    ("defaults", "status", "field"),
    [
        pytest.param({"key_algorithm": "EC_P521"}, 422, "defaults.key_algorithm", id="fail/alg"),
        pytest.param({"ttl": "91d"}, 422, "defaults.ttl", id="fail/ttl-over-max"),
        pytest.param(
            {"key_usages": ["key_cert_sign"]}, 422, "defaults.key_usages", id="fail/key-usage"
        ),
        pytest.param(
            {"extended_key_usages": ["code_signing"]},
            422,
            "defaults.extended_key_usages",
            id="fail/eku",
        ),
        pytest.param(
            {"signature_algorithm": "SHA512"}, 422, "defaults.signature_algorithm", id="fail/hash"
        ),
        pytest.param(
            {"subject": {"common_name": "evil.org"}},
            422,
            "defaults.subject.common_name",
            id="fail/subject-cn",
        ),
        pytest.param(
            {"subject": {"organization": "Evil"}},
            422,
            "defaults.subject.organization",
            id="fail/subject-denied",
        ),
        pytest.param({"ttl": "10 years"}, 422, "defaults.ttl", id="fail/ttl-syntax"),
        pytest.param({"key_algorithm": "RSA_512"}, 422, "defaults.key_algorithm", id="fail/enum"),
        pytest.param({"colour": "red"}, 422, "defaults.colour", id="fail/unknown-default"),
        pytest.param(
            {"subject": {"country": "Germany"}}, 422, "defaults.subject.country", id="fail/country"
        ),
        pytest.param(
            {"key_usages": "digital_signature"}, 422, "defaults.key_usages", id="fail/not-a-list"
        ),
    ],
)
async def test_defaults_must_satisfy_the_policy(
    admin: httpx.AsyncClient,
    ca_and_policy: tuple[dict[str, Any], dict[str, Any]],
    defaults: dict[str, Any],
    status: int,
    field: str,
) -> None:
    root, policy = ca_and_policy
    base = profile_body(root["id"], policy["id"])
    body = {**base, "defaults": {**base["defaults"], **defaults}}
    problem(await admin.post(f"{API}/profiles", json=body), status, field)
    assert body["slug"] not in await _slugs(admin)

    # A PATCH to the same defaults is refused too, and the profile is left as it was.
    profile = await create_profile(admin, root["id"], policy["id"])
    r = await admin.patch(f"{API}/profiles/{profile['slug']}", json={"defaults": body["defaults"]})
    problem(r, status, field)
    assert ok(await admin.get(f"{API}/profiles/{profile['id']}")) == profile


@pytest.mark.parametrize(
    ("overrides", "status", "field"),
    [
        pytest.param({"slug": "Web"}, 422, "slug", id="fail/slug-case"),
        pytest.param({"slug": "-web"}, 422, "slug", id="fail/slug-hyphen"),
        pytest.param({"slug": "web server"}, 422, "slug", id="fail/slug-space"),
        pytest.param({"slug": "w" * 64}, 422, "slug", id="fail/slug-long"),
        pytest.param({"slug": str(uuid4())}, 422, "slug", id="fail/slug-uuid"),
        pytest.param({"slug": None}, 422, "slug", id="fail/slug-null"),
        pytest.param({"ca_id": str(uuid4())}, 404, "ca_id", id="fail/unknown-ca"),
        pytest.param({"policy_id": str(uuid4())}, 404, "policy_id", id="fail/unknown-policy"),
        pytest.param({"ca_id": "root"}, 422, "ca_id", id="fail/ca-not-uuid"),
        pytest.param({"defaults": None}, 422, "defaults", id="fail/defaults-null"),
        pytest.param({"name": "n" * 129}, 422, "name", id="fail/long-name"),
        pytest.param({"colour": "red"}, 422, "colour", id="fail/unknown-field"),
    ],
)
async def test_bad_profile_is_refused(
    admin: httpx.AsyncClient,
    ca_and_policy: tuple[dict[str, Any], dict[str, Any]],
    overrides: dict[str, Any],
    status: int,
    field: str,
) -> None:
    root, policy = ca_and_policy
    before = await _slugs(admin)
    body = {**profile_body(root["id"], policy["id"]), **overrides}
    problem(await admin.post(f"{API}/profiles", json=body), status, field)
    assert await _slugs(admin) == before


async def test_duplicate_slug_is_409(
    admin: httpx.AsyncClient, ca_and_policy: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    root, policy = ca_and_policy
    profile = await create_profile(admin, root["id"], policy["id"])
    r = await admin.post(
        f"{API}/profiles", json=profile_body(root["id"], policy["id"], slug=profile["slug"])
    )
    problem(r, 409, "slug")
    assert ok(await admin.get(f"{API}/profiles/{profile['slug']}")) == profile


async def test_patch(
    admin: httpx.AsyncClient, ca_and_policy: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    root, policy = ca_and_policy
    profile = await create_profile(admin, root["id"], policy["id"])
    url = f"{API}/profiles/{profile['slug']}"

    # Moving to a policy the defaults violate, to an unknown CA or policy: refused.
    strict = await create_policy(admin, key_algorithms=["RSA_2048"])
    problem(await admin.patch(url, json={"policy_id": strict["id"]}), 422, "defaults.key_algorithm")
    problem(await admin.patch(url, json={"ca_id": str(uuid4())}), 404, "ca_id")
    problem(await admin.patch(url, json={"policy_id": str(uuid4())}), 404, "policy_id")
    problem(await admin.patch(url, json={"slug": "renamed"}), 422, "slug")
    assert ok(await admin.get(url)) == profile

    # A good change.
    other_root = await create_root(admin)
    patched = ok(
        await admin.patch(
            url,
            json={
                "name": "Renamed",
                "ca_id": other_root["id"],
                "policy_id": strict["id"],
                "defaults": {**profile["defaults"], "key_algorithm": "RSA_2048"},
            },
        )
    )
    assert patched["name"] == "Renamed"
    assert patched["ca_id"] == other_root["id"]
    assert patched["policy_id"] == strict["id"]
    assert patched["defaults"]["key_algorithm"] == "RSA_2048"
    assert ok(await admin.get(url)) == patched

    # A profile whose CA was disabled can still be renamed; moving to a disabled CA cannot.
    ok(await admin.post(f"{API}/cas/{other_root['id']}/disable"))
    try:
        assert (
            ok(await admin.patch(url, json={"description": "still here"}))["description"]
            == "still here"
        )
    finally:
        ok(await admin.post(f"{API}/cas/{other_root['id']}/enable"))
    ok(await admin.post(f"{API}/cas/{root['id']}/disable"))
    try:
        problem(await admin.patch(url, json={"ca_id": root["id"]}), 422, "ca_id")
    finally:
        ok(await admin.post(f"{API}/cas/{root['id']}/enable"))
    assert ok(await admin.get(url))["ca_id"] == other_root["id"]


async def test_delete_and_unknown(
    admin: httpx.AsyncClient, ca_and_policy: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    root, policy = ca_and_policy
    profile = await create_profile(admin, root["id"], policy["id"])
    app = await create_application(admin)
    ok(await admin.put(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}"), 201)

    problem(await admin.delete(f"{API}/profiles/{profile['slug']}"), 409, "profile")
    assert ok(await admin.get(f"{API}/profiles/{profile['slug']}")) == profile
    r = await admin.delete(f"{API}/applications/{app['slug']}/profiles/{profile['slug']}")
    assert r.status_code == 204
    assert (await admin.delete(f"{API}/profiles/{profile['id']}")).status_code == 204

    for ref in (profile["slug"], profile["id"], "no-such-profile", str(uuid4())):
        problem(await admin.get(f"{API}/profiles/{ref}"), 404, "profile")
        problem(await admin.patch(f"{API}/profiles/{ref}", json={"name": "x"}), 404, "profile")
        problem(await admin.delete(f"{API}/profiles/{ref}"), 404, "profile")
