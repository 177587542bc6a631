"""Private and public keys: generating, identifying, serialising, and refusing weak ones.

Only the key types of `KeyAlgorithm` exist for Certforge. Every key that enters from outside (a
CSR, an imported CA, a stored blob) goes through `key_algorithm_of`, so a weak or exotic key is
refused in one place with one clear message instead of failing somewhere deep in signing.
"""

from __future__ import annotations

from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from certforge.common.domain import KeyAlgorithm, SignatureHash
from certforge.common.errors import FieldError, InvalidInput, Unprocessable

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
"""A private key of a type Certforge supports."""

PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
"""A public key of a type Certforge supports."""

_RSA_SIZES = {
    2048: KeyAlgorithm.RSA_2048,
    3072: KeyAlgorithm.RSA_3072,
    4096: KeyAlgorithm.RSA_4096,
}
_CURVES = {
    "secp256r1": KeyAlgorithm.EC_P256,
    "secp384r1": KeyAlgorithm.EC_P384,
    "secp521r1": KeyAlgorithm.EC_P521,
}
_CURVE_OF: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1(),
    KeyAlgorithm.EC_P384: ec.SECP384R1(),
    KeyAlgorithm.EC_P521: ec.SECP521R1(),
}
_DEFAULT_HASH = {
    KeyAlgorithm.RSA_2048: SignatureHash.SHA256,
    KeyAlgorithm.RSA_3072: SignatureHash.SHA256,
    KeyAlgorithm.RSA_4096: SignatureHash.SHA256,
    KeyAlgorithm.EC_P256: SignatureHash.SHA256,
    KeyAlgorithm.EC_P384: SignatureHash.SHA384,
    KeyAlgorithm.EC_P521: SignatureHash.SHA512,
}
SigningHash: TypeAlias = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
"""A hash Certforge signs with (SHA-1 and SHA-224 are not offered)."""

_HASHES: dict[SignatureHash, type[SigningHash]] = {
    SignatureHash.SHA256: hashes.SHA256,
    SignatureHash.SHA384: hashes.SHA384,
    SignatureHash.SHA512: hashes.SHA512,
}
_MIN_RSA_EXPONENT = 65537


def generate_private_key(alg: KeyAlgorithm) -> PrivateKey:
    """A fresh key from the operating system's CSPRNG (RSA with the usual exponent 65537)."""
    if alg.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=_rsa_size(alg))
    if alg.is_ec:
        return ec.generate_private_key(_CURVE_OF[alg])
    return ed25519.Ed25519PrivateKey.generate()


def _rsa_size(alg: KeyAlgorithm) -> int:
    return next(size for size, known in _RSA_SIZES.items() if known is alg)


def key_algorithm_of(key: PublicKeyTypes | PrivateKeyTypes, *, field: str = "key") -> KeyAlgorithm:
    """The `KeyAlgorithm` of a key, or `Unprocessable` on `field` when Certforge refuses it.

    Refused: RSA other than 2048/3072/4096 bits (too weak, or too slow to be worth supporting),
    RSA with a public exponent below 65537 (e=3 has a history of signature forgeries), EC
    curves other than P-256/P-384/P-521 (e.g. secp256k1: TLS stacks and the CA/Browser Forum
    profile accept only the NIST curves), DSA (withdrawn by FIPS 186-5), X25519/X448 (cannot
    sign) and Ed448 (hardly any client verifies it).
    """
    if isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | dsa.DSAPrivateKey
        | ed448.Ed448PrivateKey
        | x25519.X25519PrivateKey
        | x448.X448PrivateKey,
    ):
        return key_algorithm_of(key.public_key(), field=field)
    if isinstance(key, rsa.RSAPublicKey):
        alg = _RSA_SIZES.get(key.key_size)
        if alg is None:
            raise _refuse(
                field, f"RSA key of {key.key_size} bits is not supported (use 2048, 3072 or 4096)"
            )
        exponent = key.public_numbers().e
        if exponent < _MIN_RSA_EXPONENT or exponent % 2 == 0:
            raise _refuse(field, "RSA public exponent must be odd and at least 65537")
        return alg
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _CURVES.get(key.curve.name)
        if alg is None:
            raise _refuse(
                field, f"EC curve {key.curve.name} is not supported (use P-256, P-384 or P-521)"
            )
        return alg
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    kind = {
        dsa.DSAPublicKey: "DSA",
        ed448.Ed448PublicKey: "Ed448",
        x25519.X25519PublicKey: "X25519",
        x448.X448PublicKey: "X448",
    }
    name = next((label for cls, label in kind.items() if isinstance(key, cls)), "this key type")
    raise _refuse(
        field, f"{name} keys are not supported (use RSA 2048-4096, EC P-256/P-384/P-521, Ed25519)"
    )


def _refuse(field: str, message: str) -> Unprocessable:
    return Unprocessable(detail=f"{field}: {message}", errors=[FieldError(field, message)])


def as_supported_public_key(key: PublicKeyTypes, *, field: str = "key") -> PublicKey:
    """`key` narrowed to the types Certforge supports, after `key_algorithm_of` accepted it."""
    key_algorithm_of(key, field=field)
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key


def as_supported_private_key(key: PrivateKeyTypes, *, field: str = "key") -> PrivateKey:
    """`key` narrowed to the types Certforge supports, after `key_algorithm_of` accepted it."""
    key_algorithm_of(key, field=field)
    assert isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    )
    return key


def private_key_to_pkcs8_pem(key: PrivateKey) -> str:
    """Unencrypted PKCS#8 PEM: the form handed to callers of managed issuance and to syncers."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def private_key_to_der(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER, the plaintext that envelope encryption protects at rest."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_der(data: bytes, *, field: str = "private_key") -> PrivateKey:
    """A key from unencrypted DER (PKCS#8, or the older PKCS#1/SEC1), supported types only.

    Errors never include the input: it is key material.
    """
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInput.on_field(field, "not a valid unencrypted DER private key") from None
    return as_supported_private_key(key, field=field)


def load_stored_private_key(der: bytes) -> PrivateKey:
    """A key just decrypted from Certforge's own storage, without re-validating it.

    The envelope's AES-GCM tag (bound to the row) proves these are the bytes written when the
    key was generated or imported, and validated, here. Validating again on every read costs,
    for RSA, the primality tests of p and q: about 55 ms for RSA-2048, as much as generating
    a key, on every issuance from the key pool and every delivery of a key.
    """
    key = serialization.load_der_private_key(
        der, password=None, unsafe_skip_rsa_key_validation=True
    )
    return as_supported_private_key(key, field="private_key")


def load_private_key_pem(text: str | bytes, *, field: str = "private_key") -> PrivateKey:
    """A key from unencrypted PEM (PKCS#8, PKCS#1 or SEC1), supported types only.

    Encrypted PEM is refused: the caller would have to send the password alongside, which gains
    nothing. Errors never include the input: it is key material.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidInput.on_field(
            field, "encrypted private keys are not accepted; send it unencrypted over TLS"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput.on_field(field, "not a valid unencrypted PEM private key") from None
    return as_supported_private_key(key, field=field)


def default_signature_hash(alg: KeyAlgorithm) -> SignatureHash | None:
    """The hash that matches the signer's strength (RFC 5480 pairs P-384 with SHA-384, …).

    `None` for Ed25519, whose signature algorithm has no separate hash.
    """
    return _DEFAULT_HASH.get(alg)


def hash_algorithm(sig: SignatureHash | None, signer_alg: KeyAlgorithm) -> SigningHash | None:
    """The `cryptography` hash to pass to `sign()`: `sig`, or the signer's default when unset.

    Ed25519 signers take `None`; asking for a hash with one is refused on `signature_hash`
    rather than silently ignored, because the caller believes it chose something.
    """
    if signer_alg is KeyAlgorithm.ED25519:
        if sig is not None:
            raise Unprocessable.on_field(
                "signature_hash", f"an Ed25519 signer takes no signature hash (got {sig.value})"
            )
        return None
    chosen = sig if sig is not None else _DEFAULT_HASH[signer_alg]
    return _HASHES[chosen]()
