"""ACME end to end in-process: the api's protocol endpoints, the real validator checking
http-01, dns-01 and tls-alpn-01 against the session's responders and DNS server, and the real
issuer. Names under `.test` resolve to 127.0.0.1 (the validator's resolver is the session DNS
server); the IP identifier 127.0.0.1 is proved by tls-alpn-01 (RFC 8738 §6)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from cryptography import x509

from acme_kit import acme_problem, csr_der, enable_acme, registered
from acme_responders import DnsServer, Http01Responder, TlsAlpnResponder
from admin_kit import API, ClientFor
from certforge.common.acme import dns01_txt_value, key_authorization
from issuance_kit import Enrollment, enroll, pem_blocks
from pki_tools import openssl_verify

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def enrollment(admin: httpx.AsyncClient, api_app: Any) -> Enrollment:
    policy = {
        "subject": {"common_name": {"allowed": ["*.test"]}},
        "sans": {"dns": {"allowed": ["*.test"]}, "ip": {"allowed": ["127.0.0.0/8"]}},
    }
    e = await enroll(admin, policy=policy)
    await enable_acme(api_app, e)
    return e


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}.test"


async def test_each_challenge_type_with_the_real_validator(
    client_for: ClientFor,
    enrollment: Enrollment,
    api_app: Any,
    admin: httpx.AsyncClient,
    validator: object,
    http01_responder: Http01Responder,
    tls_alpn_responder: TlsAlpnResponder,
    acme_dns: DnsServer,
) -> None:
    client = await registered(client_for, enrollment)
    thumbprint = client.key.thumbprint()
    web, mail = name("web"), name("mail")
    r = await client.new_order(web, mail, "127.0.0.1")
    assert r.status_code == 201, r.text
    order_url, order = r.headers["location"], r.json()
    for authz_url in order["authorizations"]:
        authz = (await client.get(authz_url)).json()
        value = authz["identifier"]["value"]
        kind = {mail: "dns-01", "127.0.0.1": "tls-alpn-01"}.get(value, "http-01")
        challenge = next(c for c in authz["challenges"] if c["type"] == kind)
        key_authz = key_authorization(challenge["token"], thumbprint)
        if kind == "dns-01":
            acme_dns.set_txt(f"_acme-challenge.{value}", [dns01_txt_value(key_authz)])
        elif kind == "tls-alpn-01":
            tls_alpn_responder.serve(value, key_authz)
        else:
            http01_responder.serve(challenge["token"], key_authz)
        answered = await client.post(challenge["url"], {})
        assert answered.status_code == 200, answered.text
    ready = await client.wait_order(order_url, "ready")
    csr, _ = csr_der([web, mail, "127.0.0.1"], common_name=web)
    r = await client.finalize(ready, csr)
    assert r.status_code == 200, r.text
    done = await client.wait_order(order_url)

    chain = pem_blocks((await client.get(done["certificate"])).text)
    openssl_verify(enrollment.root["certificate"], chain[1:], chain[0])
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted([web, mail])

    # the certificate is in the inventory with the others, renewed by its ACME client
    certificate_id = done["certificate"].rsplit("/", 1)[1]
    shown = await admin.get(f"{API}/applications/{enrollment.app}/certificates/{certificate_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["auto_renew"] is False


async def test_a_wrong_answer_invalidates_the_order(
    client_for: ClientFor,
    enrollment: Enrollment,
    validator: object,
    http01_responder: Http01Responder,
) -> None:
    client = await registered(client_for, enrollment)
    host = name("wrong")
    r = await client.new_order(host)
    order_url = r.headers["location"]
    authz = (await client.get(r.json()["authorizations"][0])).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    http01_responder.serve(challenge["token"], "not-the-key-authorization")
    assert (await client.post(challenge["url"], {})).status_code == 200
    order = await client.wait_order(order_url, "invalid")
    assert order["error"]["type"].startswith("urn:ietf:params:acme:error:")
    checked = (await client.get(challenge["url"])).json()
    assert checked["status"] == "invalid"
    assert checked["error"]["type"].startswith("urn:ietf:params:acme:error:")
    csr, _ = csr_der([host])
    acme_problem(await client.finalize(order, csr), 403, "orderNotReady")
