"""Keys: every supported algorithm round-trips, weak and exotic keys are refused clearly."""

from __future__ import annotations

import functools

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certforge.common.crypto.keys import (
    PrivateKey,
    default_signature_hash,
    generate_private_key,
    hash_algorithm,
    key_algorithm_of,
    load_private_key_der,
    load_private_key_pem,
    load_stored_private_key,
    private_key_to_der,
    private_key_to_pkcs8_pem,
)
from certforge.common.domain import KeyAlgorithm, SignatureHash
from certforge.common.errors import InvalidInput, Unprocessable


@functools.cache
def key(alg: KeyAlgorithm) -> PrivateKey:
    return generate_private_key(alg)


@pytest.mark.parametrize("alg", list(KeyAlgorithm), ids=lambda a: f"ok/{a.value}")
def test_generated_key_has_its_algorithm_and_round_trips(alg: KeyAlgorithm) -> None:
    private = key(alg)
    assert key_algorithm_of(private) is alg
    assert key_algorithm_of(private.public_key()) is alg
    pem = private_key_to_pkcs8_pem(private)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    der = private_key_to_der(private)
    loaders = (load_private_key_pem(pem), load_private_key_der(der), load_stored_private_key(der))
    for loaded in loaders:
        assert private_key_to_der(loaded) == der


def test_a_stored_key_still_signs_and_matches_its_public_key() -> None:
    """The stored-key loader skips only RSA's consistency check: the key is the same key."""
    private = key(KeyAlgorithm.RSA_2048)
    loaded = load_stored_private_key(private_key_to_der(private))
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.public_key().public_numbers() == private.public_key().public_numbers()
    signature = loaded.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    private.public_key().verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())


def _rsa_public(bits: int, exponent: int = 65537) -> rsa.RSAPublicKey:
    # A modulus of the right length is enough for the size check and avoids slow key generation.
    return rsa.RSAPublicNumbers(exponent, (1 << (bits - 1)) | 1).public_key()


def _dsa_public() -> dsa.DSAPublicKey:
    p = (1 << 2047) | 1
    q = (1 << 223) | 1
    params = dsa.DSAParameterNumbers(p, q, 2)
    return dsa.DSAPublicNumbers(5, params).public_key()


REFUSED: list[tuple[str, PublicKeyTypes, str]] = [
    ("fail/rsa-1024", _rsa_public(1024), "RSA key of 1024 bits"),
    ("fail/rsa-2560", _rsa_public(2560), "RSA key of 2560 bits"),
    ("fail/rsa-8192", _rsa_public(8192), "RSA key of 8192 bits"),
    ("fail/rsa-e3", _rsa_public(2048, exponent=3), "public exponent"),
    ("fail/rsa-e17", _rsa_public(2048, exponent=17), "public exponent"),
    (
        "fail/secp256k1",
        ec.generate_private_key(ec.SECP256K1()).public_key(),
        "curve secp256k1",
    ),
    ("fail/p224", ec.generate_private_key(ec.SECP224R1()).public_key(), "curve secp224r1"),
    ("fail/ed448", ed448.Ed448PrivateKey.generate().public_key(), "Ed448 keys"),
    ("fail/x25519", x25519.X25519PrivateKey.generate().public_key(), "X25519 keys"),
    ("fail/dsa", _dsa_public(), "DSA keys"),
]


@pytest.mark.parametrize(
    ("public", "message"), [(k, m) for _, k, m in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_unsupported_keys_are_refused_on_the_field(public: PublicKeyTypes, message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        key_algorithm_of(public, field="csr")
    assert caught.value.errors[0].field == "csr"
    assert message in caught.value.errors[0].message


def test_private_key_of_a_refused_type_is_refused() -> None:
    with pytest.raises(Unprocessable):
        key_algorithm_of(ed448.Ed448PrivateKey.generate())


GARBAGE = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4=\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "text",
    [GARBAGE, "", "not pem at all", GARBAGE[:40]],
    ids=["fail/garbage-body", "fail/empty", "fail/not-pem", "fail/truncated"],
)
def test_malformed_pem_key_is_invalid_input_without_echo(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_private_key_pem(text)
    assert caught.value.errors[0].field == "private_key"
    assert "c2VjcmV0" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_encrypted_pem_key_is_refused() -> None:
    pem = key(KeyAlgorithm.EC_P256).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(InvalidInput, match="encrypted"):
        load_private_key_pem(pem)


def test_malformed_der_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        load_private_key_der(b"\x30\x03\x02\x01\x00")


def test_loading_a_weak_key_is_unprocessable() -> None:
    weak = ec.generate_private_key(ec.SECP256K1())
    der = weak.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(Unprocessable, match="secp256k1"):
        load_private_key_der(der)


@pytest.mark.parametrize(
    ("alg", "expected"),
    [
        (KeyAlgorithm.RSA_2048, SignatureHash.SHA256),
        (KeyAlgorithm.RSA_3072, SignatureHash.SHA256),
        (KeyAlgorithm.RSA_4096, SignatureHash.SHA256),
        (KeyAlgorithm.EC_P256, SignatureHash.SHA256),
        (KeyAlgorithm.EC_P384, SignatureHash.SHA384),
        (KeyAlgorithm.EC_P521, SignatureHash.SHA512),
        (KeyAlgorithm.ED25519, None),
    ],
    ids=lambda v: f"ok/{v}" if isinstance(v, KeyAlgorithm) else "",
)
def test_default_signature_hash(alg: KeyAlgorithm, expected: SignatureHash | None) -> None:
    assert default_signature_hash(alg) == expected


@pytest.mark.parametrize(
    ("sig", "signer", "expected"),
    [
        pytest.param(None, KeyAlgorithm.EC_P384, hashes.SHA384, id="ok/default-p384"),
        pytest.param(None, KeyAlgorithm.RSA_4096, hashes.SHA256, id="ok/default-rsa"),
        pytest.param(SignatureHash.SHA512, KeyAlgorithm.RSA_2048, hashes.SHA512, id="ok/explicit"),
        pytest.param(None, KeyAlgorithm.ED25519, None, id="ok/ed25519-none"),
    ],
)
def test_hash_algorithm(
    sig: SignatureHash | None, signer: KeyAlgorithm, expected: type[hashes.HashAlgorithm] | None
) -> None:
    chosen = hash_algorithm(sig, signer)
    if expected is None:
        assert chosen is None
    else:
        assert isinstance(chosen, expected)


def test_hash_with_ed25519_signer_is_refused_on_signature_hash() -> None:
    with pytest.raises(Unprocessable) as caught:
        hash_algorithm(SignatureHash.SHA256, KeyAlgorithm.ED25519)
    assert caught.value.errors[0].field == "signature_hash"


def test_ed25519_key_is_ed25519() -> None:
    assert key_algorithm_of(ed25519.Ed25519PrivateKey.generate()) is KeyAlgorithm.ED25519
