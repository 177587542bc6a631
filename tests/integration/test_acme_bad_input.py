"""Every bad input of the ACME issue gets its exact ACME error type and status, never a 500:
malformed JWS, wrong or unsupported algorithms, stale or reused nonces, unknown or deactivated
accounts, EAB failures, identifiers outside the policy, CSRs that do not match the order,
finalize twice, unsupported challenge types and oversize bodies."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import SecurityWarning
from joserfc.jwk import OctKey, RSAKey

from acme_kit import (
    AcmeClient,
    acme_client,
    acme_problem,
    create_eab_key,
    csr_der,
    enable_acme,
    issued,
    new_key,
    public_jwk,
    ready_order,
    record_verdict,
    registered,
    sign,
)
from admin_kit import API, ClientFor, ok
from certforge.common.acme import b64url, b64url_decode
from issuance_kit import Enrollment, enroll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def enrollment(admin: httpx.AsyncClient, api_app: Any) -> Enrollment:
    e = await enroll(admin)
    await enable_acme(api_app, e)
    return e


@pytest.fixture(scope="module")
async def eab_enrollment(admin: httpx.AsyncClient, api_app: Any) -> Enrollment:
    e = await enroll(admin)
    await enable_acme(api_app, e, eab_required=True)
    return e


# --- the JWS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'"eyJhbGciOiJFUzI1NiJ9.e30.c2ln"',
        b'{"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}]}',
        b'{"protected": "e30", "payload": "e30"}',
        b'{"protected": "!!", "payload": "e30", "signature": "AA"}',
        b'{"protected": "e30=", "payload": "e30", "signature": "AA"}',
        b"[]",
    ],
    ids=[
        "fail/not-json",
        "fail/compact",
        "fail/general-serialization",
        "fail/no-signature",
        "fail/not-base64url",
        "fail/padded",
        "fail/array",
    ],
)
async def test_malformed_jws(client_for: ClientFor, enrollment: Enrollment, body: bytes) -> None:
    client = await acme_client(client_for, enrollment)
    acme_problem(await client.post_raw(client.directory["newAccount"], body), 400, "malformed")


async def test_unprotected_header_is_refused(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = await client.signed_body(url, {"termsOfServiceAgreed": True}, use_jwk=True)
    body["header"] = {"kid": "x"}
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "malformed")


@pytest.mark.parametrize("alg", ["HS256", "none", "ES512", "PS256", 7])
async def test_unsupported_algorithm(
    client_for: ClientFor, enrollment: Enrollment, alg: object
) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    protected = {
        "alg": alg,
        "nonce": await client.new_nonce(),
        "url": url,
        "jwk": public_jwk(client.key),
    }
    header = b64url(orjson.dumps(protected))
    body = {"protected": header, "payload": b64url(b"{}"), "signature": b64url(b"x" * 64)}
    problem = acme_problem(
        await client.post_raw(url, orjson.dumps(body)), 400, "badSignatureAlgorithm"
    )
    assert problem["algorithms"] == ["ES256", "ES384", "RS256", "EdDSA"]


async def test_hmac_signed_request_is_refused(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    key = OctKey.generate_key(256)
    protected = {
        "alg": "HS256",
        "nonce": await client.new_nonce(),
        "url": url,
        "jwk": {"kty": "oct"},
    }
    body = sign(key, {}, protected)
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "badSignatureAlgorithm")


async def test_weak_rsa_account_key(client_for: ClientFor, enrollment: Enrollment) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        weak = RSAKey.import_key(rsa.generate_private_key(65537, 1024))
    client = await acme_client(client_for, enrollment)
    client.key = weak
    acme_problem(await client.register(), 400, "badPublicKey")


async def test_jwk_must_be_public(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    protected = {
        "alg": "ES256",
        "nonce": await client.new_nonce(),
        "url": url,
        "jwk": client.key.as_dict(private=True),
    }
    body = sign(client.key, {}, protected)
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "badPublicKey")


async def test_signature_must_verify(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = await client.signed_body(url, {"termsOfServiceAgreed": True}, use_jwk=True)
    body["payload"] = b64url(b'{"termsOfServiceAgreed": false}')
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "malformed")
    other = new_key()
    body = await client.signed_body(url, {}, key=other, header={"jwk": public_jwk(client.key)})
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "malformed")


async def test_algorithm_must_fit_the_key(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = await client.signed_body(url, {}, use_jwk=True)
    protected = orjson.loads(b64url_decode(body["protected"]))
    body["protected"] = b64url(orjson.dumps({**protected, "alg": "ES384"}))
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "malformed")


@pytest.mark.parametrize(
    ("header", "resource"),
    [
        ({"url": None}, "newAccount"),
        ({"kid": "http://certforge.test/acct/x"}, "newAccount"),  # jwk and kid
        ({"crit": ["b64"], "b64": False}, "newAccount"),
    ],
    ids=["fail/no-url", "fail/jwk-and-kid", "fail/b64"],
)
async def test_header_rules(
    client_for: ClientFor, enrollment: Enrollment, header: dict[str, Any], resource: str
) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory[resource]
    body = await client.signed_body(url, {}, use_jwk=True, header=header)
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "malformed")


async def test_key_reference_per_resource(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await registered(client_for, enrollment)
    # newOrder takes kid, not jwk
    r = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "a.example.com"}]},
        use_jwk=True,
    )
    acme_problem(r, 400, "malformed")
    # newAccount takes jwk, not kid
    acme_problem(await client.post(client.directory["newAccount"], {}), 400, "malformed")


async def test_url_header_must_be_the_request_url(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = await client.signed_body(client.directory["newOrder"], {}, use_jwk=True)
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 403, "unauthorized")


async def test_media_type_must_be_jose_json(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = await client.signed_body(url, {"termsOfServiceAgreed": True}, use_jwk=True)
    r = await client.post_raw(url, orjson.dumps(body), {"Content-Type": "application/json"})
    acme_problem(r, 415, "malformed")


async def test_oversize_body(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = await client.signed_body(url, {"pad": "x" * 70_000}, use_jwk=True)
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 413, "malformed")


async def test_post_as_get_where_a_payload_is_needed(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    acme_problem(await client.post(client.directory["newOrder"], None), 400, "malformed")


async def test_a_payload_where_post_as_get_is_needed(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("read.example.com")
    acme_problem(await client.post(r.headers["location"], {}), 400, "malformed")
    acme_problem(await client.post(f"{client.kid}/orders", {}), 400, "malformed")


async def test_wrong_method_is_an_acme_problem(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await acme_client(client_for, enrollment)
    r = await client.http.get(client.directory["newAccount"])
    acme_problem(r, 405, "malformed")
    assert r.headers["allow"] == "POST"


# --- nonces ----------------------------------------------------------------------------------


async def test_nonce_used_twice(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    nonce = await client.new_nonce()
    url = client.directory["newAccount"]
    first = await client.post(url, {"termsOfServiceAgreed": True}, use_jwk=True, nonce=nonce)
    assert first.status_code == 201, first.text
    again = await client.post(url, {"termsOfServiceAgreed": True}, use_jwk=True, nonce=nonce)
    acme_problem(again, 400, "badNonce")
    fresh = again.headers["replay-nonce"]
    assert fresh != nonce
    retried = await client.post(url, {"termsOfServiceAgreed": True}, use_jwk=True, nonce=fresh)
    assert retried.status_code == 200, retried.text


@pytest.mark.parametrize("nonce", ["", "never-issued", "x" * 100], ids=["empty", "unknown", "long"])
async def test_unknown_nonce(client_for: ClientFor, enrollment: Enrollment, nonce: str) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    r = await client.post(url, {}, use_jwk=True, nonce=nonce)
    acme_problem(r, 400, "badNonce")


async def test_missing_nonce(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    url = client.directory["newAccount"]
    body = sign(client.key, {}, {"alg": "ES256", "url": url, "jwk": public_jwk(client.key)})
    acme_problem(await client.post_raw(url, orjson.dumps(body)), 400, "badNonce")


async def test_stale_nonce(client_for: ClientFor, enrollment: Enrollment, api_app: Any) -> None:
    client = await acme_client(client_for, enrollment)
    nonce = await client.new_nonce()
    await api_app.state.certforge.db.execute(
        "UPDATE acme_nonces SET expires_at = $2 WHERE value = $1",
        nonce,
        datetime.now(UTC) - timedelta(seconds=1),
    )
    r = await client.post(client.directory["newAccount"], {}, use_jwk=True, nonce=nonce)
    acme_problem(r, 400, "badNonce")


async def test_nonces_are_shared_by_every_replica(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    """A nonce from one api instance is accepted once by another (two apps, one database)."""
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    other_app = create_app(ApiSettings.load())
    async with other_app.router.lifespan_context(other_app):
        transport = httpx.ASGITransport(app=other_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certforge.test") as h:
            first = await acme_client(client_for, enrollment)
            second = AcmeClient(h, first.directory_url, key=first.key)
            await second.load()
            nonce = await first.new_nonce()
            url = first.directory["newAccount"]
            r = await second.post(url, {"termsOfServiceAgreed": True}, use_jwk=True, nonce=nonce)
            assert r.status_code == 201, r.text
            again = await first.post(url, {}, use_jwk=True, nonce=nonce)
            acme_problem(again, 400, "badNonce")


# --- accounts --------------------------------------------------------------------------------


async def test_unknown_account(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await acme_client(client_for, enrollment)
    root = client.directory_url.removesuffix("/directory")
    for kid in (f"{root}/acct/00000000-0000-0000-0000-000000000000", "not-a-url"):
        client.kid = kid
        r = await client.new_order("a.example.com")
        acme_problem(r, 400, "accountDoesNotExist")


async def test_account_of_another_directory(
    client_for: ClientFor, enrollment: Enrollment, eab_enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    other = await acme_client(client_for, eab_enrollment)
    other.key, other.kid = client.key, client.kid
    acme_problem(await other.new_order("a.example.com"), 400, "accountDoesNotExist")


async def test_deactivated_account(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await registered(client_for, enrollment)
    assert client.kid is not None
    assert (await client.post(client.kid, {"status": "deactivated"})).status_code == 200
    acme_problem(await client.new_order("a.example.com"), 403, "unauthorized")
    acme_problem(await client.register(), 403, "unauthorized")


async def test_account_status_change_other_than_deactivation(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    assert client.kid is not None
    acme_problem(await client.post(client.kid, {"status": "valid"}), 400, "malformed")


async def test_another_accounts_url(client_for: ClientFor, enrollment: Enrollment) -> None:
    one = await registered(client_for, enrollment)
    two = await registered(client_for, enrollment)
    assert two.kid is not None
    acme_problem(await one.get(two.kid), 403, "unauthorized")
    acme_problem(await one.get(f"{two.kid}/orders"), 403, "unauthorized")


async def test_key_change_failures(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await registered(client_for, enrollment)
    url = client.directory["keyChange"]
    new = new_key()
    # inner url differs
    inner = sign(
        new,
        {"account": client.kid, "oldKey": public_jwk(client.key)},
        {"alg": "ES256", "jwk": public_jwk(new), "url": client.directory["newOrder"]},
    )
    acme_problem(await client.post(url, orjson.dumps(inner)), 400, "malformed")
    # oldKey is not the account key
    acme_problem(await client.key_change(new, old=new_key()), 400, "malformed")
    # inner signed by another key than its jwk
    inner = sign(
        new_key(),
        {"account": client.kid, "oldKey": public_jwk(client.key)},
        {"alg": "ES256", "jwk": public_jwk(new), "url": url},
    )
    acme_problem(await client.post(url, orjson.dumps(inner)), 400, "malformed")


# --- External Account Binding ----------------------------------------------------------------


async def test_eab_binds_once_and_is_audited(
    client_for: ClientFor, eab_enrollment: Enrollment, api_app: Any
) -> None:
    key_id, hmac_key = await create_eab_key(api_app, eab_enrollment)
    client = await acme_client(client_for, eab_enrollment)
    assert client.directory["meta"]["externalAccountRequired"] is True
    r = await client.register(externalAccountBinding=client.eab(key_id, hmac_key))
    assert r.status_code == 201, r.text
    db = api_app.state.certforge.db
    bound = await db.fetchrow(
        "SELECT account_id, bound_at FROM acme_eab_keys WHERE id = $1", key_id
    )
    assert str(bound["account_id"]) == r.headers["location"].rsplit("/", 1)[1]
    assert bound["bound_at"] is not None
    entry = await db.fetchrow(
        "SELECT * FROM audit_events WHERE action = 'acme.eab.bind' AND resource_id = $1", key_id
    )
    assert entry is not None
    assert entry["application_id"] is not None
    assert entry["actor_name"].startswith("acme-account:")

    second = await acme_client(client_for, eab_enrollment)
    r = await second.register(externalAccountBinding=second.eab(key_id, hmac_key))
    acme_problem(r, 403, "unauthorized")


async def test_eab_required(client_for: ClientFor, eab_enrollment: Enrollment) -> None:
    client = await acme_client(client_for, eab_enrollment)
    acme_problem(await client.register(), 403, "externalAccountRequired")


async def test_eab_wrong_mac(
    client_for: ClientFor, eab_enrollment: Enrollment, api_app: Any
) -> None:
    key_id, _ = await create_eab_key(api_app, eab_enrollment)
    client = await acme_client(client_for, eab_enrollment)
    wrong = b64url(b"\x01" * 32)
    r = await client.register(externalAccountBinding=client.eab(key_id, wrong))
    acme_problem(r, 403, "unauthorized")


async def test_eab_unknown_or_revoked_key(
    client_for: ClientFor, eab_enrollment: Enrollment, enrollment: Enrollment, api_app: Any
) -> None:
    client = await acme_client(client_for, eab_enrollment)
    r = await client.register(externalAccountBinding=client.eab("no-such-key", b64url(b"k" * 32)))
    acme_problem(r, 403, "unauthorized")
    # a key of another directory
    key_id, hmac_key = await create_eab_key(api_app, enrollment)
    r = await client.register(externalAccountBinding=client.eab(key_id, hmac_key))
    acme_problem(r, 403, "unauthorized")
    key_id, hmac_key = await create_eab_key(api_app, eab_enrollment)
    await api_app.state.certforge.db.execute(
        "UPDATE acme_eab_keys SET revoked_at = now() WHERE id = $1", key_id
    )
    r = await client.register(externalAccountBinding=client.eab(key_id, hmac_key))
    acme_problem(r, 403, "unauthorized")


async def test_eab_shape(client_for: ClientFor, eab_enrollment: Enrollment, api_app: Any) -> None:
    key_id, hmac_key = await create_eab_key(api_app, eab_enrollment)
    client = await acme_client(client_for, eab_enrollment)
    # the EAB signs another key than the account's
    other = AcmeClient(client.http, client.directory_url, key=new_key())
    other.directory = client.directory
    r = await client.register(externalAccountBinding=other.eab(key_id, hmac_key))
    acme_problem(r, 400, "malformed")
    # the EAB names another URL
    eab = client.eab(key_id, hmac_key, url=client.directory["newOrder"])
    acme_problem(await client.register(externalAccountBinding=eab), 400, "malformed")
    acme_problem(await client.register(externalAccountBinding="x"), 400, "malformed")
    # still unbound: the good binding works
    r = await client.register(externalAccountBinding=client.eab(key_id, hmac_key))
    assert r.status_code == 201, r.text


# --- orders ----------------------------------------------------------------------------------


async def test_identifiers_outside_the_policy(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("ok.example.com", "evil.example.org", "192.168.1.1")
    problem = acme_problem(r, 400, "rejectedIdentifier")
    refused = {s["identifier"]["value"]: s for s in problem["subproblems"]}
    assert set(refused) == {"evil.example.org", "192.168.1.1"}
    for sub in refused.values():
        assert sub["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"
        assert sub["detail"]


@pytest.mark.parametrize(
    ("identifiers", "error"),
    [
        ([{"type": "email", "value": "a@example.com"}], "unsupportedIdentifier"),
        ([{"type": "dns", "value": "not a name"}], "rejectedIdentifier"),
        ([{"type": "dns", "value": "bücher.example.com"}], "rejectedIdentifier"),
        ([{"type": "ip", "value": "10.0.0.300"}], "rejectedIdentifier"),
        ([{"type": "dns", "value": "example"}], "rejectedIdentifier"),
    ],
    ids=["fail/type", "fail/dns-syntax", "fail/u-label", "fail/ip", "fail/single-label"],
)
async def test_identifier_values(
    client_for: ClientFor, enrollment: Enrollment, identifiers: list[Any], error: str
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.post(client.directory["newOrder"], {"identifiers": identifiers})
    problem = acme_problem(r, 400, error)
    assert problem["subproblems"][0]["identifier"]["value"] == identifiers[0]["value"]


@pytest.mark.parametrize(
    "payload",
    [
        {"identifiers": []},
        {"identifiers": "a.example.com"},
        {"identifiers": [{"type": "dns"}]},
        {},
        {"identifiers": [{"type": "dns", "value": "a.example.com"}], "notAfter": "2030-01-01"},
    ],
    ids=["fail/empty", "fail/string", "fail/no-value", "fail/missing", "fail/not-after"],
)
async def test_order_shape(
    client_for: ClientFor, enrollment: Enrollment, payload: dict[str, Any]
) -> None:
    client = await registered(client_for, enrollment)
    acme_problem(await client.post(client.directory["newOrder"], payload), 400, "malformed")


async def test_wildcard_needs_dns01(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    e = await enroll(admin)
    await enable_acme(api_app, e, challenge_types=["http-01", "tls-alpn-01"])
    client = await registered(client_for, e)
    problem = acme_problem(await client.new_order("*.example.com"), 400, "rejectedIdentifier")
    assert problem["subproblems"][0]["identifier"] == {"type": "dns", "value": "*.example.com"}
    r = await client.new_order("www.example.com")
    assert r.status_code == 201, r.text
    authz = (await client.get(r.json()["authorizations"][0])).json()
    assert sorted(c["type"] for c in authz["challenges"]) == ["http-01", "tls-alpn-01"]


async def test_wildcard_order_offers_dns01_only(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("*.example.com")
    assert r.status_code == 201, r.text
    authz = (await client.get(r.json()["authorizations"][0])).json()
    assert authz["identifier"] == {"type": "dns", "value": "example.com"}
    assert authz["wildcard"] is True
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


async def test_another_accounts_order(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    owner = await registered(client_for, enrollment)
    intruder = await registered(client_for, enrollment)
    r = await owner.new_order("a.example.com")
    order = r.json()
    acme_problem(await intruder.get(r.headers["location"]), 403, "unauthorized")
    acme_problem(await intruder.get(order["authorizations"][0]), 403, "unauthorized")
    challenge = (await owner.challenge_urls(order))[0]
    acme_problem(await intruder.post(challenge, {}), 403, "unauthorized")
    csr, _ = csr_der(["a.example.com"])
    acme_problem(await intruder.finalize(order, csr), 403, "unauthorized")


async def test_unknown_order_and_authorization(
    client_for: ClientFor, enrollment: Enrollment
) -> None:
    client = await registered(client_for, enrollment)
    root = client.directory_url.removesuffix("/directory")
    for path in ("order/00000000-0000-0000-0000-000000000000", "authz/nope", "chall/1"):
        acme_problem(await client.get(f"{root}/{path}"), 404, "malformed")


# --- finalize --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "common_name", "error"),
    [
        (["a.example.com", "b.example.com"], None, "badCSR"),
        (["a.example.com"], None, "badCSR"),
        (["a.example.com", "b.example.com", "c.example.com", "10.0.0.9"], None, "badCSR"),
        (["a.example.com", "10.0.0.9"], "c.example.com", "badCSR"),
    ],
    ids=["fail/extra-name", "fail/missing-names", "fail/extra-ip", "fail/common-name"],
)
async def test_csr_must_match_the_order(
    client_for: ClientFor,
    enrollment: Enrollment,
    api_app: Any,
    names: list[str],
    common_name: str | None,
    error: str,
) -> None:
    client = await registered(client_for, enrollment)
    order = await ready_order(client, api_app, "a.example.com", "10.0.0.9")
    csr, _ = csr_der(names, common_name=common_name)
    acme_problem(await client.finalize(order, csr), 400, error)
    assert (await client.get(order["url"])).json()["status"] == "ready"


async def test_csr_checks(client_for: ClientFor, enrollment: Enrollment, api_app: Any) -> None:
    client = await registered(client_for, enrollment)
    order = await ready_order(client, api_app, "a.example.com")
    acme_problem(await client.post(order["finalize"], {"csr": "%%%"}), 400, "malformed")
    acme_problem(await client.post(order["finalize"], {}), 400, "malformed")
    acme_problem(await client.post(order["finalize"], {"csr": b64url(b"junk")}), 400, "badCSR")
    weak, _ = csr_der(["a.example.com"], key=rsa.generate_private_key(65537, 1024))
    acme_problem(await client.finalize(order, weak), 400, "badCSR")
    p521, _ = csr_der(["a.example.com"], key=ec.generate_private_key(ec.SECP521R1()))
    acme_problem(await client.finalize(order, p521), 400, "badCSR")  # not in the policy
    account_key = client.key.private_key  # type: ignore[union-attr]
    same, _ = csr_der(["a.example.com"], key=account_key)
    acme_problem(await client.finalize(order, same), 400, "badCSR")
    assert (await client.get(order["url"])).json()["status"] == "ready"


async def test_finalize_is_processed_once(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    client = await registered(client_for, enrollment)
    order = await ready_order(client, api_app, "twice.example.com")
    csr, _ = csr_der(["twice.example.com"])
    nonces = [await client.new_nonce() for _ in range(4)]
    bodies = [
        await client.signed_body(order["finalize"], {"csr": b64url(csr)}, nonce=n) for n in nonces
    ]
    answers = await asyncio.gather(
        *(client.post_raw(order["finalize"], orjson.dumps(b)) for b in bodies)
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 403, 403, 403], [r.text for r in answers]
    for r in answers:
        if r.status_code == 403:
            acme_problem(r, 403, "orderNotReady")
    done = await client.wait_order(order["url"])
    requests = await api_app.state.certforge.db.fetchval(
        "SELECT count(*) FROM certificate_requests WHERE params->'metadata'->>'acme/order' = $1",
        order["url"].rsplit("/", 1)[1],
    )
    assert requests == 1
    assert done["certificate"]


async def test_challenge_of_a_finished_authorization(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("done.example.com")
    order = r.json()
    authz = (await client.get(order["authorizations"][0])).json()
    first, second = (c["url"] for c in authz["challenges"][:2])
    assert (await client.post(first, {})).status_code == 200
    await record_verdict(api_app, first)
    acme_problem(await client.post(second, {}), 400, "malformed")
    assert (await client.get(second)).json()["status"] == "pending"


async def test_invalid_challenge_invalidates_the_order(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("bad.example.com")
    url = (await client.challenge_urls(r.json()))[0]
    await client.post(url, {})
    await record_verdict(api_app, url, valid=False)
    order = (await client.get(r.headers["location"])).json()
    assert order["status"] == "invalid"
    assert order["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    csr, _ = csr_der(["bad.example.com"])
    acme_problem(await client.finalize(order, csr), 403, "orderNotReady")


async def test_deactivating_an_authorization(client_for: ClientFor, enrollment: Enrollment) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("gone.example.com")
    authz_url = r.json()["authorizations"][0]
    acme_problem(await client.post(authz_url, {"status": "valid"}), 400, "malformed")
    d = await client.post(authz_url, {"status": "deactivated"})
    assert d.status_code == 200, d.text
    assert d.json()["status"] == "deactivated"
    assert (await client.get(r.headers["location"])).json()["status"] == "invalid"


async def test_expired_order_is_invalid(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    client = await registered(client_for, enrollment)
    r = await client.new_order("late.example.com")
    order_id = r.headers["location"].rsplit("/", 1)[1]
    await api_app.state.certforge.db.execute(
        "UPDATE acme_orders SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
        order_id,
    )
    assert (await client.get(r.headers["location"])).json()["status"] == "invalid"


async def test_expired_nonces_are_purged(api_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from certforge.api.acme import nonces

    # `issue` purges now and then by itself (one time in 64): not while this test counts.
    monkeypatch.setattr(nonces, "PURGE_ONE_IN", 10**12)
    db = api_app.state.certforge.db
    now = datetime.now(UTC)
    old = [await nonces.issue(db, now - timedelta(hours=2), 3600) for _ in range(3)]
    fresh = await nonces.issue(db, now, 3600)
    assert await nonces.purge(db, now) >= 3
    left = await db.fetch("SELECT value FROM acme_nonces WHERE value = ANY($1)", [*old, fresh])
    assert [r["value"] for r in left] == [fresh]
    assert await nonces.consume(db, fresh, now)
    assert not await nonces.consume(db, fresh, now)


async def test_orders_list_is_paginated(client_for: ClientFor, enrollment: Enrollment) -> None:
    from certforge.api.acme.orders import PAGE_SIZE

    client = await registered(client_for, enrollment)
    made = []
    for i in range(PAGE_SIZE + 2):
        r = await client.new_order(f"p{i}.example.com")
        assert r.status_code == 201, r.text
        made.append(r.headers["location"])
    assert client.kid is not None
    first = await client.get(f"{client.kid}/orders")
    assert first.status_code == 200, first.text
    assert len(first.json()["orders"]) == PAGE_SIZE
    nexts = [link for link in first.headers.get_list("link") if 'rel="next"' in link]
    assert len(nexts) == 1
    next_url = nexts[0].split(">")[0].lstrip("<")
    second = await client.get(next_url)
    assert second.status_code == 200, second.text
    assert not any('rel="next"' in link for link in second.headers.get_list("link"))
    listed = first.json()["orders"] + second.json()["orders"]
    assert listed == made[::-1]
    acme_problem(await client.get(f"{client.kid}/orders?cursor=junk"), 400, "malformed")


async def test_nul_bytes_never_reach_the_database(
    client_for: ClientFor, eab_enrollment: Enrollment
) -> None:
    client = await acme_client(client_for, eab_enrollment)
    url = client.directory["newAccount"]
    r = await client.post(url, {}, use_jwk=True, nonce="abc\x00def")
    acme_problem(r, 400, "badNonce")
    eab = client.eab("kid\x00", b64url(b"k" * 32))
    acme_problem(await client.register(externalAccountBinding=eab), 400, "malformed")
    r = await client.register(contact=["mailto:a\x00@example.com"])
    acme_problem(r, 400, "invalidContact")


async def test_acme_enrollment_stands_without_api_enrollment(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    """The two enrollments are independent: with API enrollment off, ACME clients still get
    certificates (the issuer checks the channel the request came through), while the REST API
    refuses."""
    e = await enroll(admin)
    await enable_acme(api_app, e)
    ok(await admin.put(f"{API}/applications/{e.app}/profiles/{e.profile}/enrollment/api",
                       json={"enabled": False}))  # fmt: skip
    client = await registered(client_for, e)
    done, _ = await issued(client, api_app, "acme-only.example.com")
    assert done["status"] == "valid", done
    refused = await admin.post(
        e.requests, json={"profile": e.profile, "common_name": "x.example.com"}
    )
    assert refused.status_code == 422, refused.text
    assert "API enrollment is disabled" in refused.json()["detail"]


async def test_orders_follow_the_issuers_enrollment_rule(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    """The issuer signs only while the profile's CA is active (`request_rules.check_enrollment`);
    ACME refuses orders it would fail, at once."""
    e = await enroll(admin)
    await enable_acme(api_app, e)
    client = await registered(client_for, e)
    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/disable"))
    try:
        problem = acme_problem(await client.new_order("a.example.com"), 403, "unauthorized")
        assert "is disabled" in problem["detail"]
    finally:
        ok(await admin.post(f"{API}/cas/{e.issuing['id']}/enable"))


async def test_identifiers_outside_the_cas_name_constraints(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    """The policy allows *.example.com, the issuing CA only shop.example.com's subtree."""
    from admin_kit import create_intermediate, create_policy, create_profile, create_root
    from issuance_kit import enroll_new_application

    root = await create_root(admin)
    issuing = await create_intermediate(
        admin, root["id"], name_constraints={"permitted": {"dns": ["shop.example.com"]}}
    )
    policy = await create_policy(admin)
    profile = await create_profile(admin, issuing["id"], policy["id"])
    e = await enroll_new_application(admin, root, issuing, policy, profile)
    await enable_acme(api_app, e)
    client = await registered(client_for, e)
    r = await client.new_order("shop.example.com", "www.example.com")
    problem = acme_problem(r, 400, "rejectedIdentifier")
    assert [s["identifier"]["value"] for s in problem["subproblems"]] == ["www.example.com"]
    assert "name constraints" in problem["subproblems"][0]["detail"]
    assert (await client.new_order("shop.example.com")).status_code == 201
