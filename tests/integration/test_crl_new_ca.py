"""Issue 20 defect 6 and issue 17: a new CA answers OCSP and serves its CRL from the moment its
creation call returns (responder and first CRL made with the CA, not by the upkeep loop), a
revocation in its first second is answered `revoked`; CRLs are served from memory, re-checked
against the database, with validators and 304; a CA without a CRL yet answers 503 with
Retry-After.
"""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from admin_kit import API, ClientFor, create_root, ok, problem
from certforge.api.domain import crls
from certforge.api.revocation_memory import CrlMemory
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.tables import Crl, OcspResponder
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.revocation import RevocationPublisher, RevocationSettings
from harness import Backends
from issuance_kit import enroll, issue, member
from lifecycle_kit import crl_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _rows(api_app: Any, table: Any, ca_id: str) -> list[Any]:
    async with api_app.state.certforge.sessions() as session:
        return list(await session.exec(sa.select(table).where(table.ca_id == UUID(ca_id))))


async def test_a_new_ca_serves_its_crl_and_answers_ocsp_at_once(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    root = await create_root(admin)
    r = await anonymous.get(crl_url(root["id"]))  # right after the creation call returned
    assert r.status_code == 200, r.text
    crl = x509.load_der_x509_crl(r.content)
    ca_cert = x509.load_pem_x509_certificate(root["certificate"].encode())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert len(crl) == 0
    assert len(await _rows(api_app, OcspResponder, root["id"])) == 1

    # The issuing CA of a fresh enrollment, asked at once: good, then revoked at once.
    pki = await enroll(admin)
    operator = await member(admin, client_for, pki.app, "operator")
    body = await issue(operator, pki, common_name="first-second.example.com")
    leaf = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
    issuing = x509.load_pem_x509_certificate(pki.issuing["certificate"].encode())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuing, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    path = f"/ocsp/{pki.issuing['id']}/{base64.b64encode(request).decode()}"
    answer = ocsp.load_der_ocsp_response((await anonymous.get(path)).content)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    url = f"{pki.certificates}/{body['certificate']['id']}/revoke"
    ok(await operator.post(url, json={"reason": "superseded"}))
    answer = ocsp.load_der_ocsp_response((await anonymous.get(path)).content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.superseded


async def test_crl_validators_and_304(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    root = await create_root(admin)
    url = crl_url(root["id"])
    der = await anonymous.get(url)
    pem = await anonymous.get(url + ".pem")
    assert der.headers["content-type"] == "application/pkix-crl"
    assert pem.headers["content-type"] == "application/x-pem-file"
    assert x509.load_pem_x509_crl(pem.content) == x509.load_der_x509_crl(der.content)
    for r in (der, pem):
        directives = [d.strip() for d in r.headers["cache-control"].split(",")]
        assert "public" in directives
        assert "no-transform" in directives
        assert r.headers["last-modified"]
        assert r.headers["expires"]
    assert der.headers["etag"] != pem.headers["etag"]
    for r, path in ((der, url), (pem, url + ".pem")):
        again = await anonymous.get(path, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
        since = await anonymous.get(path, headers={"If-Modified-Since": r.headers["last-modified"]})
        assert since.status_code == 304
    other = await anonymous.get(url, headers={"If-None-Match": '"an-older-crl"'})
    assert other.status_code == 200
    assert other.content == der.content


async def test_served_from_memory_and_rechecked(
    admin: httpx.AsyncClient, api_app: Any, backends: Backends
) -> None:
    """Within the recheck interval the remembered CRL is served without a query; after it, one
    query finds the newer CRL the issuer signed."""
    root = await create_root(admin)
    ca_id = UUID(root["id"])
    context = api_app.state.certforge
    memory = CrlMemory()
    now = 1000.0
    first = await crls.current(context.sessions, memory, ca_id, lambda: now, 5)
    assert first.number == 1
    async with context.sessions() as session, session.begin():
        await session.exec(  # type: ignore[call-overload]
            sa.text("UPDATE certificate_authorities SET crl_dirty = true WHERE id = :id"),
            params={"id": ca_id},
        )
    publisher = RevocationPublisher(
        context.sessions,
        SignerCache(KeyRing.parse(backends.ca_keks)),
        context.leaf_keys,
        RevocationSettings(),
    )
    await publisher.refresh()
    assert crls.remembered(memory, ca_id, now + 4, 5) is first
    assert (await crls.current(context.sessions, memory, ca_id, lambda: now + 4, 5)) is first
    newer = await crls.current(context.sessions, memory, ca_id, lambda: now + 6, 5)
    assert newer.number > first.number
    assert (
        x509.load_der_x509_crl(newer.der)
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        == newer.number
    )


async def test_no_crl_yet_is_503_with_retry_after(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any
) -> None:
    """Only a CA created before CRLs were signed at creation can lack one; it says when to
    retry. An unknown CA is 404."""
    root = await create_root(admin)
    async with api_app.state.certforge.sessions() as session, session.begin():
        await session.exec(  # type: ignore[call-overload]
            sa.delete(Crl).where(Crl.ca_id == UUID(root["id"]))  # type: ignore[arg-type]
        )
    r = await anonymous.get(crl_url(root["id"]))
    problem(r, 503)
    assert int(r.headers["retry-after"]) >= 1
    r = await anonymous.get(crl_url(str(uuid4())))
    problem(r, 404, "ca_id")
    r = await anonymous.get(f"{API}/cas/not-a-uuid/crl")
    assert r.status_code == 422
