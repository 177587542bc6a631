"""CSRs: valid ones parse with proof of possession; broken, weak and exotic ones are refused."""

from __future__ import annotations

import base64
import functools
import warnings
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.x509.oid import NameOID

from certforge.common.crypto.csr import build_csr, csr_to_pem, parse_csr, parse_csr_der
from certforge.common.crypto.keys import PrivateKey, generate_private_key
from certforge.common.domain import KeyAlgorithm, SanType, SubjectFields
from certforge.common.errors import CertforgeError, InvalidInput, Unprocessable
from certforge.common.template import San

SUBJECT = SubjectFields(common_name="api.example.com", organization="Acme", country="DE")
SANS = [
    San(type=SanType.DNS, value="api.example.com"),
    San(type=SanType.IP, value="192.0.2.1"),
    San(type=SanType.EMAIL, value="ops@example.com"),
    San(type=SanType.URI, value="spiffe://example.org/api"),
]


@functools.cache
def key(alg: KeyAlgorithm) -> PrivateKey:
    return generate_private_key(alg)


@pytest.mark.parametrize(
    "alg",
    [KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_2048, KeyAlgorithm.ED25519],
    ids=lambda a: f"ok/{a.value}",
)
def test_valid_csr_parses(alg: KeyAlgorithm) -> None:
    parsed = parse_csr(csr_to_pem(build_csr(key(alg), SUBJECT, SANS)))
    assert parsed.subject == SUBJECT
    assert parsed.sans == SANS
    assert parsed.key_algorithm is alg
    assert parsed.public_key == key(alg).public_key()
    assert parsed.unsupported_subject_oids == []
    assert parsed.ignored_extension_oids == []


def test_csr_without_subject_or_sans_parses_empty() -> None:
    parsed = parse_csr(csr_to_pem(build_csr(key(KeyAlgorithm.EC_P256), SubjectFields())))
    assert parsed.subject == SubjectFields()
    assert parsed.sans == []


def test_der_csr_parses() -> None:
    csr = build_csr(key(KeyAlgorithm.EC_P256), SUBJECT, SANS)
    assert parse_csr_der(csr.public_bytes(serialization.Encoding.DER)).sans == SANS


def test_extra_attributes_and_extensions_are_reported_not_honoured() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "1234"),
        ]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key(KeyAlgorithm.EC_P256), hashes.SHA256())
    )
    parsed = parse_csr(csr_to_pem(csr))
    assert parsed.subject == SubjectFields(common_name="a.example.com")
    assert parsed.unsupported_subject_oids == [NameOID.SERIAL_NUMBER.dotted_string]
    assert parsed.ignored_extension_oids == [x509.OID_BASIC_CONSTRAINTS.dotted_string]


def _pem(csr: x509.CertificateSigningRequest) -> str:
    return csr_to_pem(csr)


def _tampered_signature() -> str:
    der = bytearray(
        build_csr(key(KeyAlgorithm.EC_P256), SUBJECT, SANS).public_bytes(serialization.Encoding.DER)
    )
    der[-5] ^= 0x01  # inside the signature BIT STRING, the last element of the CSR
    return _wrap(bytes(der))


def _tampered_subject() -> str:
    pem = _pem(build_csr(key(KeyAlgorithm.RSA_2048), SUBJECT))
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    index = der.index(b"api.example.com")
    der[index] = ord("x")
    return _wrap(bytes(der))


def _wrap(der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _csr_with(private_key: Any, algorithm: Any = None) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak.example.com")]))
        .sign(private_key, algorithm)
    )
    return _pem(csr)


def _csr_with_otherName_san() -> str:
    upn = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03a@b")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([upn]), critical=False)
        .sign(key(KeyAlgorithm.EC_P256), hashes.SHA256())
    )
    return _pem(csr)


def _csr_with_long_cn() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attribute = x509.NameAttribute(NameOID.COMMON_NAME, "x" * 70, _validate=False)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([attribute]))
        .sign(key(KeyAlgorithm.EC_P256), hashes.SHA256())
    )
    return _pem(csr)


VALID = _pem(build_csr(key(KeyAlgorithm.EC_P256), SUBJECT, SANS))

CASES = [
    pytest.param(_tampered_signature(), Unprocessable, "csr", "proof of possession", id="fail/sig"),
    pytest.param(_tampered_subject(), Unprocessable, "csr", "proof of possession", id="fail/body"),
    pytest.param(
        _csr_with(rsa.generate_private_key(65537, 1024), hashes.SHA256()),
        Unprocessable,
        "csr",
        "1024 bits",
        id="fail/rsa-1024",
    ),
    pytest.param(
        _csr_with(ec.generate_private_key(ec.SECP256K1()), hashes.SHA256()),
        Unprocessable,
        "csr",
        "secp256k1",
        id="fail/secp256k1",
    ),
    pytest.param(
        _csr_with(ed448.Ed448PrivateKey.generate()), Unprocessable, "csr", "Ed448", id="fail/ed448"
    ),
    pytest.param(VALID[: len(VALID) // 2], InvalidInput, "csr", "malformed", id="fail/truncated"),
    pytest.param(
        VALID.replace("-----END CERTIFICATE REQUEST-----\n", ""),
        InvalidInput,
        "csr",
        "malformed",
        id="fail/no-end-line",
    ),
    pytest.param("garbage", InvalidInput, "csr", "exactly one", id="fail/garbage"),
    pytest.param("", InvalidInput, "csr", "exactly one", id="fail/empty"),
    pytest.param(VALID + VALID, InvalidInput, "csr", "exactly one", id="fail/two-csrs"),
    pytest.param(
        VALID.replace("CERTIFICATE REQUEST", "CERTIFICATE"),
        InvalidInput,
        "csr",
        "malformed",
        id="fail/wrong-label",
    ),
    pytest.param(
        _csr_with_otherName_san(), Unprocessable, "csr.sans.0", "otherName", id="fail/upn-san"
    ),
    pytest.param(
        _csr_with_long_cn(), Unprocessable, "csr.subject.common_name", "64", id="fail/long-cn"
    ),
]


@pytest.mark.parametrize(("pem", "error", "field", "message"), CASES)
def test_bad_csrs_are_refused(
    pem: str, error: type[CertforgeError], field: str, message: str
) -> None:
    with pytest.raises(error) as caught:
        parse_csr(pem)
    assert type(caught.value) is error
    assert caught.value.errors[0].field == field
    assert message in caught.value.errors[0].message
    assert "-----" not in str(caught.value)


def test_garbage_der_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_csr_der(b"\x30\x82\x01")
    assert caught.value.errors[0].field == "csr"
