"""ACME (RFC 8555) against the in-process api, the real issuer, PostgreSQL and NATS.

Validation is the validator's; here its verdict is written by `acme_kit.record_verdict` (the
api's part ends when a challenge is `processing` with its command queued), so these tests are
about the protocol endpoints alone (`test_acme_end_to_end.py` runs the real validator).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography import x509

from acme_kit import (
    BASE,
    acme_client,
    acme_problem,
    csr_der,
    directory_url,
    enable_acme,
    new_key,
    record_verdict,
    registered,
)
from admin_kit import API, ClientFor
from certforge.common.acme import AriCertId
from issuance_kit import Enrollment, enroll, pem_blocks
from pki_tools import openssl_verify

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def enrollment(admin: httpx.AsyncClient, api_app: Any) -> Enrollment:
    e = await enroll(admin)
    await enable_acme(api_app, e, terms_of_service="https://example.com/tos")
    return e


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


async def test_account_update_deactivation_and_key_change(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    client = await registered(client_for, enrollment)
    assert client.kid is not None
    r = await client.post(client.kid, {"contact": ["mailto:new@example.com"]})
    assert r.status_code == 200, r.text
    assert r.json()["contact"] == ["mailto:new@example.com"]

    new = new_key("ES384")
    r = await client.key_change(new)
    assert r.status_code == 200, r.text
    old = client.key
    client.key = new
    assert (await client.get(client.kid)).status_code == 200
    client.key = old  # the old key no longer signs for the account
    acme_problem(await client.get(client.kid), 400, "malformed")
    client.key = new

    other = await registered(client_for, enrollment)
    r = await other.key_change(new)
    acme_problem(r, 409, "malformed")
    assert r.headers["location"] == client.kid

    pending = await client.new_order("cancelled.example.com")
    assert pending.status_code == 201, pending.text
    r = await client.post(client.kid, {"status": "deactivated"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "deactivated"
    db = api_app.state.certforge.db
    order_id = pending.headers["location"].rsplit("/", 1)[1]
    order = await db.fetchrow("SELECT status, error FROM acme_orders WHERE id = $1::uuid", order_id)
    assert order["status"] == "invalid"
    assert order["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
    authz = await db.fetchval(
        "SELECT status FROM acme_authorizations WHERE order_id = $1::uuid", order_id
    )
    assert authz == "deactivated"
    acme_problem(await client.get(client.kid), 403, "unauthorized")
    acme_problem(await client.new_order("a.example.com"), 403, "unauthorized")


async def test_only_return_existing(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    r = await client.register(onlyReturnExisting=True)
    acme_problem(r, 400, "accountDoesNotExist")


@pytest.mark.parametrize(
    ("contact", "error"),
    [
        (["tel:+3312345678"], "unsupportedContact"),
        (["mailto:not an address"], "invalidContact"),
        (["mailto:a@example.com?subject=x"], "invalidContact"),
        (["mailto:a@example.com,b@example.com"], "invalidContact"),
    ],
    ids=["fail/scheme", "fail/address", "fail/hfields", "fail/two-addresses"],
)
async def test_contacts_are_checked(
    client_for: ClientFor, enrollment: Enrollment, contact: list[str], error: str
) -> None:
    client = await acme_client(client_for, enrollment)
    acme_problem(await client.register(contact=contact), 400, error)


async def test_terms_of_service_must_be_agreed(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await acme_client(client_for, enrollment)
    r = await client.post(client.directory["newAccount"], {"contact": []}, use_jwk=True)
    acme_problem(r, 400, "malformed")


# --- the whole flow --------------------------------------------------------------------------


async def test_order_to_certificate(
    client_for: ClientFor,
    enrollment: Enrollment,
    api_app: Any,
    admin: httpx.AsyncClient,
) -> None:
    client = await registered(client_for, enrollment)
    names = ["www.example.com", "example.com", "10.1.2.3"]
    r = await client.new_order(*names)
    assert r.status_code == 201, r.text
    order = r.json()
    order_url = r.headers["location"]
    assert order["status"] == "pending"
    assert {i["value"] for i in order["identifiers"]} == set(names)
    assert len(order["authorizations"]) == 3

    authz = (await client.get(order["authorizations"][0])).json()
    assert authz["status"] == "pending"
    kinds = sorted(c["type"] for c in authz["challenges"])
    authzs = [(await client.get(u)).json() for u in order["authorizations"]]
    ip_authz = next(a for a in authzs if a["identifier"]["type"] == "ip")
    assert sorted(c["type"] for c in ip_authz["challenges"]) == ["http-01", "tls-alpn-01"]
    assert kinds in (["dns-01", "http-01", "tls-alpn-01"], ["http-01", "tls-alpn-01"])

    # finalize before the authorizations are valid
    csr, _ = csr_der(names)
    acme_problem(await client.finalize(order, csr), 403, "orderNotReady")

    for url in await client.challenge_urls(order):
        r = await client.post(url, {})
        assert r.status_code == 200, r.text
        # processing (or already judged, when the session's real validator runs too)
        assert r.json()["status"] != "pending"
        assert any('rel="up"' in link for link in r.headers.get_list("link"))
        assert (await client.post(url, {})).json()["status"] != "pending"
        await _assert_one_validate_command(api_app, url)
        await record_verdict(api_app, url)
        read = (await client.get(url)).json()
        assert read["status"] == "valid"
        assert read["validated"]

    order = (await client.get(order_url)).json()
    assert order["status"] == "ready"

    r = await client.finalize(order, csr)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processing"
    assert r.headers["retry-after"] == "1"
    assert r.headers["location"] == order_url
    # a second finalize is not processed again
    acme_problem(await client.finalize(order, csr), 403, "orderNotReady")

    done = await client.wait_order(order_url)
    cert_url = done["certificate"]
    r = await client.get(cert_url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pem-certificate-chain"
    blocks = pem_blocks(r.text)
    assert blocks[0].strip() != enrollment.issuing["certificate"].strip()
    assert blocks[1].strip() == enrollment.issuing["certificate"].strip()
    assert len(blocks) == 2, "chain 0 leaves the root out"
    assert f'<{cert_url}/1>;rel="alternate"' in r.headers.get_list("link")
    full = await client.get(f"{cert_url}/1")
    assert pem_blocks(full.text)[-1].strip() == enrollment.root["certificate"].strip()
    assert any('rel="alternate"' in link for link in full.headers.get_list("link"))
    openssl_verify(enrollment.root["certificate"], blocks[1:], blocks[0])
    leaf = x509.load_pem_x509_certificate(blocks[0].encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["example.com", "www.example.com"]
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"10.1.2.3"}

    # the certificate is in the application's inventory, renewed by its client
    certificate_id = cert_url.rsplit("/", 1)[1]
    shown = await admin.get(f"{API}/applications/{enrollment.app}/certificates/{certificate_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["auto_renew"] is False
    assert shown.json()["metadata"]["acme/order"] == order_url.rsplit("/", 1)[1]

    # the orders list names it
    orders = (await client.get(f"{client.kid}/orders")).json()["orders"]
    assert order_url in orders

    # ARI: a window before expiry, and Retry-After
    aki_cert_id = str(AriCertId.of(leaf))
    info = await client.http.get(f"{client.directory['renewalInfo']}/{aki_cert_id}")
    assert info.status_code == 200, info.text
    window = info.json()["suggestedWindow"]
    assert window["start"] < window["end"]
    assert int(info.headers["retry-after"]) > 0


async def _assert_one_validate_command(api_app: Any, challenge_url: str) -> None:
    context = api_app.state.certforge
    count = await context.db.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = $1 AND convert_from(payload, 'UTF8') LIKE $2",
        context.subjects.validate_challenge,
        f"%{challenge_url.rsplit('/', 1)[1]}%",
    )
    assert count == 1


async def test_malformed_forwarded_headers_are_ignored(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    r = await client_for(None).get(
        directory_url(enrollment),
        headers={"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil.example/path?"},
    )
    assert r.json()["newOrder"].startswith(f"{BASE}/acme/")
