"""The URLs the issuer writes into certificates are the api's routes, and they never move.

Certificates carrying these URLs stay in use for years: the expected strings are written out
here literally, so renaming a path (on either side) fails this test instead of relying parties.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from fastapi import APIRouter

from certforge.api.routes import cas, crls, ocsp
from certforge.common.contracts.routes import ca_urls

CA_ID = UUID("0b6f2d1e-8a47-4c9e-9d3a-5f1e2c7b9a10")


@pytest.mark.parametrize(
    ("base_url", "crl", "ocsp_url", "ca_issuers"),
    [
        pytest.param(
            "https://pki.example",
            f"https://pki.example/api/v1/cas/{CA_ID}/crl",
            f"https://pki.example/ocsp/{CA_ID}",
            f"https://pki.example/api/v1/cas/{CA_ID}/certificate.cer",
            id="ok/host",
        ),
        pytest.param(
            "http://127.0.0.1:8080/certforge",
            f"http://127.0.0.1:8080/certforge/api/v1/cas/{CA_ID}/crl",
            f"http://127.0.0.1:8080/certforge/ocsp/{CA_ID}",
            f"http://127.0.0.1:8080/certforge/api/v1/cas/{CA_ID}/certificate.cer",
            id="ok/port-and-path",
        ),
    ],
)
def test_ca_urls(base_url: str, crl: str, ocsp_url: str, ca_issuers: str) -> None:
    urls = ca_urls(base_url, CA_ID)

    assert (urls.crl, urls.ocsp, urls.ca_issuers) == (crl, ocsp_url, ca_issuers)


@pytest.mark.parametrize(
    ("router", "name", "attribute"),
    [
        pytest.param(crls.router, "ca.crl", "crl", id="ok/crl-distribution-point"),
        pytest.param(ocsp.router, "ocsp.post", "ocsp", id="ok/ocsp-responder"),
        pytest.param(cas.router, "ca.certificate_der", "ca_issuers", id="ok/ca-issuers"),
    ],
)
def test_the_api_serves_each_url(router: APIRouter, name: str, attribute: str) -> None:
    served = router.url_path_for(name, ca_id=str(CA_ID))

    assert getattr(ca_urls("", CA_ID), attribute) == served
