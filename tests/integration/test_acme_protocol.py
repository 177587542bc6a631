"""ACME (RFC 8555) against the in-process api, the real issuer, PostgreSQL and NATS.

Validation is the validator's; here its verdict is written by `acme_kit.record_verdict` (the
api's part ends when a challenge is `processing` with its command queued), so these tests are
about the protocol endpoints alone.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from acme_kit import (
    AcmeClient,
    acme_problem,
    csr_der,
    enable_acme,
    new_key,
    record_verdict,
)
from admin_kit import ClientFor
from issuance_kit import Enrollment, enroll

pytestmark = pytest.mark.integration

BASE = "http://certforge.test"


def directory_url(enrollment: Enrollment) -> str:
    return f"{BASE}/acme/{enrollment.app}/{enrollment.profile}/directory"


async def acme_client(
    client_for: ClientFor, enrollment: Enrollment, *, kind: str = "ES256"
) -> AcmeClient:
    return await AcmeClient(client_for(None), directory_url(enrollment), key=new_key(kind)).load()


@pytest.fixture(scope="module")
async def enrollment(admin: httpx.AsyncClient, api_app: Any) -> Enrollment:
    e = await enroll(admin)
    await enable_acme(api_app, e, terms_of_service="https://example.com/tos")
    return e


async def registered(client_for: ClientFor, enrollment: Enrollment, **kw: Any) -> AcmeClient:
    client = await acme_client(client_for, enrollment, **kw)
    r = await client.register(contact=["mailto:ops@example.com"])
    assert r.status_code == 201, r.text
    return client


async def ready_order(client: AcmeClient, api_app: Any, *names: str) -> dict[str, Any]:
    r = await client.new_order(*names)
    assert r.status_code == 201, r.text
    order_url = r.headers["location"]
    order = r.json()
    for url in await client.challenge_urls(order):
        answered = await client.post(url, {})
        assert answered.status_code == 200, answered.text
        await record_verdict(api_app, url)
    order = (await client.get(order_url)).json()
    assert order["status"] == "ready", order
    order["url"] = order_url
    return order


async def issued(client: AcmeClient, api_app: Any, *names: str) -> tuple[dict[str, Any], Any]:
    order = await ready_order(client, api_app, *names)
    csr, key = csr_der(list(names))
    r = await client.finalize(order, csr)
    assert r.status_code == 200, r.text
    done = await client.wait_order(order["url"])
    done["url"] = order["url"]
    return done, key


# --- directory and nonces --------------------------------------------------------------------


async def test_directory_lists_every_resource(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    r = await client_for(None).get(directory_url(enrollment))
    assert r.status_code == 200
    body = r.json()
    root = f"{BASE}/acme/{enrollment.app}/{enrollment.profile}"
    assert body["newNonce"] == f"{root}/new-nonce"
    assert body["newAccount"] == f"{root}/new-account"
    assert body["newOrder"] == f"{root}/new-order"
    assert body["revokeCert"] == f"{root}/revoke-cert"
    assert body["keyChange"] == f"{root}/key-change"
    assert body["renewalInfo"] == f"{root}/renewal-info"
    assert body["meta"] == {
        "externalAccountRequired": False,
        "termsOfService": "https://example.com/tos",
    }
    assert r.headers["replay-nonce"]
    assert f'<{root}/directory>;rel="index"' in r.headers.get_list("link")


async def test_urls_follow_the_url_the_request_came_in_on(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    r = await client_for(None).get(
        directory_url(enrollment),
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "acme.example.com:8443"},
    )
    assert r.json()["newOrder"].startswith("https://acme.example.com:8443/acme/")


async def test_new_nonce_by_head_and_get(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    head = await client.http.head(client.directory["newNonce"])
    get = await client.http.get(client.directory["newNonce"])
    assert head.status_code == 200
    assert get.status_code == 204
    for r in (head, get):
        assert r.headers["cache-control"] == "no-store"
        assert len(r.headers["replay-nonce"]) >= 22
    assert head.headers["replay-nonce"] != get.headers["replay-nonce"]


@pytest.mark.parametrize(
    "path",
    ["nope/prof/directory", "{app}/nope/directory", "{app}/{profile}/nothing-here"],
    ids=["fail/app", "fail/profile", "fail/resource"],
)
async def test_unknown_directory_is_an_acme_404(
    client_for: ClientFor, enrollment: Enrollment, path: str
) -> None:
    url = f"{BASE}/acme/" + path.format(app=enrollment.app, profile=enrollment.profile)
    acme_problem(await client_for(None).get(url), 404, "malformed")


async def test_acme_off_means_no_directory(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    e = await enroll(admin)  # API enrollment only
    acme_problem(await client_for(None).get(directory_url(e)), 404, "malformed")


# --- accounts --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ES256", "ES384", "RS256", "EdDSA"])
async def test_account_with_each_algorithm(
    client_for: ClientFor, enrollment: Enrollment, kind: str
) -> None:
    client = await acme_client(client_for, enrollment, kind=kind)
    r = await client.register(contact=["mailto:ops@example.com"])
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "valid"
    assert r.json()["contact"] == ["mailto:ops@example.com"]
    assert r.json()["orders"] == r.headers["location"] + "/orders"
    again = await client.post(
        client.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
    )
    assert again.status_code == 200, again.text
    assert again.headers["location"] == r.headers["location"]
    read = await client.get(client.kid or "")
    assert read.status_code == 200
    assert read.json()["status"] == "valid"
