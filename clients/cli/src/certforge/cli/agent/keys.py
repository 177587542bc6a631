"""Keys, CSRs and PKCS#12 on the agent's host (the `cryptography` package, nothing hand-made).

For CSR certificates the private key is generated here and never sent anywhere: only the CSR
(its public key and a signature proving possession) goes to the API. Every renewal makes a new
key and a new CSR: a key that lived one certificate's life is retired with it, as certbot does
by default, so a key that leaked once stops being useful at the next renewal.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CURVES: dict[str, ec.EllipticCurve] = {
    "EC_P256": ec.SECP256R1(),
    "EC_P384": ec.SECP384R1(),
    "EC_P521": ec.SECP521R1(),
}


def new_key(algorithm: str | None) -> PrivateKey:
    """A fresh key; EC P-256 when the config names none (fast, and every profile's default)."""
    algorithm = algorithm or "EC_P256"
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm])
    if algorithm.startswith("RSA_"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key algorithm {algorithm!r}")


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("unsupported key type")
    return key


def csr_pem(key: PrivateKey, common_name: str | None, sans: list[dict[str, str]]) -> str:
    """A CSR for the names of the config (the profile fills in usages and validity)."""
    import ipaddress

    names: list[x509.GeneralName] = []
    for san in sans:
        kind, value = san["type"], san["value"]
        if kind == "dns":
            names.append(x509.DNSName(value))
        elif kind == "ip":
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        elif kind == "email":
            names.append(x509.RFC822Name(value))
        elif kind == "uri":
            names.append(x509.UniformResourceIdentifier(value))
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode("ascii")


def pkcs12_bytes(
    name: str, key_pem_bytes: bytes, certificate_pem: str, chain_pem: str, password: bytes | None
) -> bytes:
    """The certificate, its key and chain as PKCS#12; AES-256 with PBKDF2 when a password is
    given (`BestAvailableEncryption`), else unencrypted."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    chain = x509.load_pem_x509_certificates(chain_pem.encode("ascii")) if chain_pem else []
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        name.encode(), load_key(key_pem_bytes), certificate, chain or None, encryption
    )


def lifetime(certificate_pem: str) -> tuple[datetime, datetime, str]:
    """`not_before`, `not_after` and the serial (lower-case hex) of a PEM certificate."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    return (
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        format(certificate.serial_number, "x"),
    )


def public_key_matches(certificate_pem: str, key_pem_bytes: bytes) -> bool:
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(*spki) == load_key(
        key_pem_bytes
    ).public_key().public_bytes(*spki)
