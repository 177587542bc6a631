"""Where issued certificates send relying parties (CRL distribution point, OCSP, CA issuers):
`CERTFORGE_REVOCATION_URL`, plain http, else the public URL over http; never https."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from certforge.issuer.settings import IssuerSettings, revocation_base

KEKS = SecretStr("unit:" + "A" * 43 + "=")


@pytest.mark.parametrize(
    ("public_url", "revocation_url", "expected"),
    [
        pytest.param("https://ca.example", "", "http://ca.example", id="ok/derived-from-https"),
        pytest.param("https://ca.example/", "", "http://ca.example", id="ok/trailing-slash"),
        pytest.param("http://127.0.0.1:8080", "", "http://127.0.0.1:8080", id="ok/already-http"),
        pytest.param(
            "https://ca.example:8443",
            "http://pki.example",
            "http://pki.example",
            id="ok/explicit-wins",
        ),
    ],
)
def test_revocation_base(public_url: str, revocation_url: str, expected: str) -> None:
    assert revocation_base(public_url, revocation_url) == expected
    settings = IssuerSettings(
        ca_keks=KEKS, leaf_keks=KEKS, public_url=public_url, revocation_url=revocation_url
    )
    assert settings.base_url == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://pki.example", id="fail/https"),
        pytest.param("ftp://pki.example", id="fail/scheme"),
        pytest.param("pki.example", id="fail/no-scheme"),
    ],
)
def test_revocation_url_must_be_plain_http(url: str) -> None:
    with pytest.raises(ValidationError, match="must be a plain http:// URL"):
        IssuerSettings(ca_keks=KEKS, leaf_keks=KEKS, revocation_url=url)
