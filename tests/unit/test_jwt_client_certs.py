"""What a trusted proxy passes on: the client certificate header and the caller's address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certforge.api.client_certs import from_trusted_proxy, identify, parse_header, source_address
from certforge.common.errors import Unauthenticated

PROXIES = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "w.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0xABC123)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


PEM = _pem()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(quote(PEM), id="ok/nginx-escaped"),
        pytest.param(PEM.replace("\n", "\t"), id="ok/raw-pem-tabs"),
        pytest.param(f'By=spiffe://a;Hash=x;Cert="{quote(PEM)}";Subject="CN=w"', id="ok/xfcc"),
        pytest.param(
            f'By=a;Cert="{quote(_pem())}",By=b;Cert="{quote(PEM)}"', id="ok/xfcc-last-hop"
        ),
    ],
)
def test_header_conventions(header: str) -> None:
    serial, fingerprint = identify(parse_header(header))
    assert serial == "abc123"
    assert fingerprint == identify(x509.load_pem_x509_certificate(PEM.encode()))[1]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('By=a;Hash=b;Subject="CN=x"', id="fail/xfcc-without-cert"),
        pytest.param(quote("-----BEGIN CERTIFICATE-----\nAAAA\n"), id="fail/not-pem"),
        pytest.param("x" * 20000, id="fail/huge"),
    ],
)
def test_bad_headers_are_unauthenticated(header: str) -> None:
    with pytest.raises(Unauthenticated):
        parse_header(header)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("203.0.113.5", "198.51.100.1", "203.0.113.5", id="ok/untrusted-peer"),
        pytest.param("10.0.0.2", "198.51.100.1", "198.51.100.1", id="ok/one-proxy"),
        pytest.param("10.0.0.2", "1.1.1.1, 198.51.100.1, 10.9.9.9", "198.51.100.1", id="ok/chain"),
        pytest.param("10.0.0.2", None, "10.0.0.2", id="ok/no-header"),
        pytest.param("10.0.0.2", "not-an-ip", "10.0.0.2", id="ok/garbage"),
        pytest.param("10.0.0.2", "10.1.1.1", "10.0.0.2", id="ok/only-proxies"),
    ],
)
def test_source_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert source_address(peer, forwarded, PROXIES) == expected


def test_trusted_proxy() -> None:
    assert from_trusted_proxy("10.2.3.4", PROXIES)
    assert from_trusted_proxy("fd00::1", PROXIES)
    assert not from_trusted_proxy("11.0.0.1", PROXIES)
    assert not from_trusted_proxy("10.2.3.4", ())
    assert not from_trusted_proxy("unknown", PROXIES)
