"""Certificate policies: create, read, PATCH (never breaking a profile), delete, bad documents."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from admin_kit import (
    API,
    create_policy,
    create_profile,
    create_root,
    every,
    ok,
    policy_body,
    problem,
    uid,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _policy_names(admin: httpx.AsyncClient) -> set[str]:
    return {p["name"] for p in await every(admin, f"{API}/policies")}


async def test_create_read_list(admin: httpx.AsyncClient) -> None:
    policy = await create_policy(
        admin,
        description="web servers",
        signature_hashes=["SHA256", "SHA384"],
        allow_ca=False,
    )
    assert policy["description"] == "web servers"
    assert policy["signature_hashes"] == ["SHA256", "SHA384"]
    assert ok(await admin.get(f"{API}/policies/{policy['id']}")) == policy
    assert policy["id"] in {p["id"] for p in await every(admin, f"{API}/policies")}

    # An empty policy is unrestricted (but never issues CAs).
    empty = ok(await admin.post(f"{API}/policies", json={"name": uid("open")}), 201)
    assert empty["max_validity"] is None
    assert empty["allow_ca"] is False
    assert "EC_P256" in empty["key_algorithms"]


async def test_patch_replaces_the_given_fields(admin: httpx.AsyncClient) -> None:
    policy = await create_policy(admin)
    new_name = uid("renamed")
    r = await admin.patch(
        f"{API}/policies/{policy['id']}",
        json={
            "name": new_name,
            "description": "d",
            "max_validity": "30d",
            "sans": {"dns": {"allowed": ["*.example.org"]}},
        },
    )
    patched = ok(r)
    assert patched["name"] == new_name
    assert patched["description"] == "d"
    assert patched["max_validity"] == "30d"
    assert patched["sans"] == {
        **patched["sans"],
        "dns": {**patched["sans"]["dns"], "allowed": ["*.example.org"]},
    }
    assert patched["sans"].get("ip") is None  # replaced whole
    assert patched["key_algorithms"] == policy["key_algorithms"]  # untouched
    assert patched["updated_at"] > policy["updated_at"]
    assert ok(await admin.get(f"{API}/policies/{policy['id']}")) == patched
    # null lifts the validity limit.
    assert (
        ok(await admin.patch(f"{API}/policies/{policy['id']}", json={"max_validity": None}))[
            "max_validity"
        ]
        is None
    )


async def test_patch_that_breaks_a_profile_is_refused(admin: httpx.AsyncClient) -> None:
    root = await create_root(admin)
    policy = await create_policy(admin)
    profile = await create_profile(admin, root["id"], policy["id"])
    url = f"{API}/policies/{policy['id']}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"key_algorithms": ["RSA_2048"]}, "key_algorithms"),
        ({"max_validity": "7d"}, "max_validity"),
        ({"key_usages": {"allowed": ["key_encipherment"]}}, "key_usages"),
        ({"extended_key_usages": {"allowed": ["client_auth"]}}, "extended_key_usages"),
        ({"extended_key_usages": {"required": ["client_auth"]}}, "extended_key_usages"),
    ]
    for body, field in cases:
        err = problem(await admin.patch(url, json={**body, "name": uid()}), 422, field)
        assert profile["slug"] in err["detail"]
    assert ok(await admin.get(url)) == policy


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"subject": {"cn": {"allowed": ["x"]}}}, "subject", id="fail/subject-attr"),
        pytest.param(
            {"subject": {"common_name": "x"}}, "subject.common_name", id="fail/subject-rule-type"
        ),
        pytest.param(
            {"sans": {"dns": {"allowed": ["api-*.example.com"]}}},
            "sans.dns.allowed",
            id="fail/dns-pattern",
        ),
        pytest.param(
            {"sans": {"ip": {"allowed": ["10.0.0.0/33"]}}}, "sans.ip.allowed", id="fail/cidr"
        ),
        pytest.param(
            {"sans": {"email": {"allowed": ["no-at-sign"]}}},
            "sans.email.allowed",
            id="fail/email-pattern",
        ),
        pytest.param({"sans": {"dns": {"allow": ["x.com"]}}}, "sans.dns.allow", id="fail/typo"),
        pytest.param({"sans": {"ftp": {}}}, "sans.ftp", id="fail/san-type"),
        pytest.param(
            {"sans": {"dns": {"required": True, "allowed": []}}},
            "sans.dns",
            id="fail/unsatisfiable",
        ),
        pytest.param({"key_algorithms": []}, "key_algorithms", id="fail/no-algorithms"),
        pytest.param({"key_algorithms": ["RSA_1024"]}, "key_algorithms.0", id="fail/algorithm"),
        pytest.param({"key_algorithms": "EC_P256"}, "key_algorithms", id="fail/not-a-list"),
        pytest.param({"signature_hashes": ["MD5"]}, "signature_hashes.0", id="fail/hash"),
        pytest.param(
            {"key_usages": {"allowed": ["sign_everything"]}},
            "key_usages.allowed.0",
            id="fail/key-usage",
        ),
        pytest.param(
            {"extended_key_usages": {"allowed": ["server_auth"], "required": ["client_auth"]}},
            "extended_key_usages",
            id="fail/required-not-allowed",
        ),
        pytest.param({"max_validity": "10 years"}, "max_validity", id="fail/duration"),
        pytest.param({"max_validity": "0d"}, "max_validity", id="fail/zero-duration"),
        pytest.param({"allow_ca": "maybe"}, "allow_ca", id="fail/bool"),
        pytest.param({"colour": "red"}, "colour", id="fail/unknown-field"),
        pytest.param({"name": ""}, "name", id="fail/empty-name"),
        pytest.param({"description": "d" * 1025}, "description", id="fail/long-description"),
    ],
)
async def test_bad_policy_is_422_and_changes_nothing(
    admin: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    body = policy_body(**overrides)
    problem(await admin.post(f"{API}/policies", json=body), 422, field)
    if body["name"]:
        assert body["name"] not in await _policy_names(admin)

    # The same rule in a PATCH is refused the same way, and the policy stays as it was.
    policy = await create_policy(admin)
    patch = {k: v for k, v in overrides.items() if k != "name" or v}
    if "name" not in overrides:
        problem(await admin.patch(f"{API}/policies/{policy['id']}", json=patch), 422, field)
        assert ok(await admin.get(f"{API}/policies/{policy['id']}")) == policy


async def test_duplicates_unknown_ids_and_delete(admin: httpx.AsyncClient) -> None:
    policy = await create_policy(admin)
    other = await create_policy(admin)
    problem(await admin.post(f"{API}/policies", json=policy_body(name=policy["name"])), 409, "name")
    r = await admin.patch(f"{API}/policies/{other['id']}", json={"name": policy["name"]})
    problem(r, 409, "name")
    assert ok(await admin.get(f"{API}/policies/{other['id']}")) == other

    missing = uuid4()
    problem(await admin.get(f"{API}/policies/{missing}"), 404, "policy_id")
    problem(await admin.patch(f"{API}/policies/{missing}", json={"name": uid()}), 404, "policy_id")
    problem(await admin.delete(f"{API}/policies/{missing}"), 404, "policy_id")
    problem(await admin.get(f"{API}/policies/not-a-uuid"), 422, "policy_id")

    # In use by a profile: 409 and still there; unused: 204, then gone.
    root = await create_root(admin)
    profile = await create_profile(admin, root["id"], policy["id"])
    problem(await admin.delete(f"{API}/policies/{policy['id']}"), 409, "policy_id")
    assert ok(await admin.get(f"{API}/policies/{policy['id']}")) == policy
    assert (await admin.delete(f"{API}/profiles/{profile['slug']}")).status_code == 204
    assert (await admin.delete(f"{API}/policies/{policy['id']}")).status_code == 204
    problem(await admin.get(f"{API}/policies/{policy['id']}"), 404, "policy_id")
