"""Issue 18: the CRL distribution point, OCSP and CA-issuer URLs that issued certificates carry
are plain http:// (`CERTFORGE_REVOCATION_URL`), and what they name answers: the api, served on
a real TCP port, returns the issuing CA's CRL, an OCSP answer for the certificate, and the
issuing CA's certificate. (`make run` serving the whole URLs on its plain-http port is checked
by tests/e2e/test_make_run.py.)"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from certforge.common.crypto.envelope import KeyRing
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.revocation import RevocationPublisher, RevocationSettings
from harness import Backends
from issuance_kit import enroll, issue

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def served(api_app: Any) -> AsyncIterator[str]:
    """The api on a free loopback port, over plain http (what relying parties use)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(api_app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)
    sock.close()


def _on(base: str, url: str) -> str:
    """`url`'s path on the api at `base` (the session issuer writes its default host)."""
    return base + urllib.parse.urlsplit(url).path


async def test_certificates_point_at_plain_http_urls_that_answer(
    admin: httpx.AsyncClient, api_app: Any, backends: Backends, served: str
) -> None:
    pki = await enroll(admin)
    body = await issue(admin, pki, common_name="relying.example.com")
    leaf = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
    issuing = x509.load_pem_x509_certificate(pki.issuing["certificate"].encode())
    # The issuer's CRL and OCSP responder, now rather than at its next poll.
    context = api_app.state.certforge
    signers = SignerCache(KeyRing.parse(backends.ca_keks))
    await RevocationPublisher(
        context.sessions, signers, context.leaf_keys, RevocationSettings()
    ).refresh()

    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    (crl_url,) = [name.value for point in cdp for name in point.full_name or []]
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    by_method = {d.access_method: d.access_location.value for d in aia}
    ocsp_url = by_method[AuthorityInformationAccessOID.OCSP]
    issuers_url = by_method[AuthorityInformationAccessOID.CA_ISSUERS]
    for url in (crl_url, ocsp_url, issuers_url):
        assert url.startswith("http://"), url

    async with httpx.AsyncClient(timeout=10) as relying_party:
        crl = await relying_party.get(_on(served, crl_url))
        assert crl.status_code == 200, crl.text
        loaded = x509.load_der_x509_crl(crl.content)
        assert loaded.issuer == issuing.subject
        assert loaded.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]

        ca = await relying_party.get(_on(served, issuers_url))
        assert ca.status_code == 200
        assert x509.load_der_x509_certificate(ca.content) == issuing

        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf, issuing, hashes.SHA1())  # RFC 6960's usual CertID hash
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        answer = await relying_party.post(
            _on(served, ocsp_url),
            content=request,
            headers={"Content-Type": "application/ocsp-request"},
        )
        assert answer.status_code == 200
        response = ocsp.load_der_ocsp_response(answer.content)
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
