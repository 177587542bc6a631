"""The pure OCSP core: CertID matching for every key type and hash, GET decoding, parsing."""

from __future__ import annotations

import base64
import urllib.parse
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certforge.api.ocsp import (
    GOOD,
    Issuer,
    Responder,
    Revocation,
    build_response,
    decode_get,
    parse_request,
)
from certforge.common.crypto.certificates import build_intermediate_ca, build_self_signed_ca
from certforge.common.crypto.keys import PrivateKey, generate_private_key
from certforge.common.crypto.revocation import build_ocsp_responder
from certforge.common.domain import KeyAlgorithm, RevocationReason, SubjectFields

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _ca(alg: KeyAlgorithm) -> tuple[x509.Certificate, x509.Certificate, PrivateKey]:
    """A root and an intermediate keyed `alg` (the intermediate's issuer differs from it)."""
    root_key = generate_private_key(KeyAlgorithm.EC_P256)
    root = build_self_signed_ca(
        SubjectFields(common_name="Root"), root_key, NOW, NOW + timedelta(days=9), 1, None
    )
    key = generate_private_key(alg)
    sub = build_intermediate_ca(
        SubjectFields(common_name="Sub"),
        key.public_key(),
        root,
        root_key,
        NOW,
        NOW + timedelta(days=8),
        0,
        None,
    )
    return root, sub, key


def _request(cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm,
             nonce: bytes | None = None) -> bytes:  # fmt: skip
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("alg", [KeyAlgorithm.EC_P256, KeyAlgorithm.ED25519, KeyAlgorithm.RSA_2048])
@pytest.mark.parametrize(
    "algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]
)
def test_issuer_hashes_match_the_requests(
    alg: KeyAlgorithm, algorithm: hashes.HashAlgorithm
) -> None:
    root, sub, key = _ca(alg)
    leaf_key = generate_private_key(KeyAlgorithm.EC_P256)
    leaf = build_ocsp_responder(sub, key, leaf_key.public_key(), NOW, NOW + timedelta(days=1))
    cert_id = parse_request(_request(leaf, sub, algorithm))
    assert cert_id is not None
    assert Issuer(sub).named_by(cert_id)
    assert not Issuer(root).named_by(cert_id)  # the leaf's issuer is `sub`, not the root


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda b: base64.b64encode(b).decode(), id="ok/plain"),
        pytest.param(lambda b: urllib.parse.quote(base64.b64encode(b).decode(), safe=""),
                     id="ok/url-encoded"),
        pytest.param(lambda b: base64.b64encode(b).decode().rstrip("="), id="ok/unpadded"),
        pytest.param(lambda b: base64.urlsafe_b64encode(b).decode(), id="ok/urlsafe"),
        pytest.param(lambda b: base64.b64encode(b).decode().replace("+", " "),
                     id="ok/plus-as-space"),
    ],
)  # fmt: skip
def test_decode_get(transform: object) -> None:
    der = bytes(range(256)) * 2  # every byte value: '+' and '/' in its base64
    assert decode_get(transform(der)) == der  # type: ignore[operator]


@pytest.mark.parametrize("text", ["", "!!!", "QUJ", "%ZZ"])
def test_decode_get_garbage_is_not_a_request(text: str) -> None:
    decoded = decode_get(text)
    assert decoded is None or parse_request(decoded) is None


def test_parse_refuses_oversized_nonces() -> None:
    """RFC 9654: 1 to 128 octets."""
    _, sub, _ = _ca(KeyAlgorithm.EC_P256)
    assert parse_request(_request(sub, sub, hashes.SHA1(), b"n" * 128)) is not None
    assert parse_request(_request(sub, sub, hashes.SHA1(), b"n" * 129)) is None


def test_response_statuses_and_reason() -> None:
    _, sub, key = _ca(KeyAlgorithm.EC_P256)
    responder_key = generate_private_key(KeyAlgorithm.EC_P256)
    responder_cert = build_ocsp_responder(
        sub,
        key,
        responder_key.public_key(),
        NOW,
        NOW + timedelta(days=1),
    )
    responder = Responder(uuid4(), responder_cert, responder_key, NOW + timedelta(days=1))
    cert_id = parse_request(_request(responder_cert, sub, hashes.SHA256(), b"x" * 32))
    assert cert_id is not None
    cases = [
        (GOOD, ocsp.OCSPCertStatus.GOOD, None),
        (None, ocsp.OCSPCertStatus.UNKNOWN, None),
        (Revocation(NOW, RevocationReason.KEY_COMPROMISE), ocsp.OCSPCertStatus.REVOKED,
         x509.ReasonFlags.key_compromise),
        (Revocation(NOW, RevocationReason.UNSPECIFIED), ocsp.OCSPCertStatus.REVOKED, None),
    ]  # fmt: skip
    for status, expected, reason in cases:
        der = build_response(cert_id, status, responder, NOW, timedelta(minutes=5))
        response = ocsp.load_der_ocsp_response(der)
        assert response.certificate_status is expected
        assert response.revocation_reason == reason
        assert response.this_update_utc == NOW
        assert response.next_update_utc == NOW + timedelta(minutes=5)
        assert response.serial_number == responder_cert.serial_number
        nonce = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        assert nonce == b"x" * 32
