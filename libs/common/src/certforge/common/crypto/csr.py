"""Certificate signing requests: parsing callers' CSRs strictly, and building CSRs for clients.

A CSR is untrusted input. `parse_csr` checks, in this order, that it decodes, that its key is one
Certforge supports, and that its signature verifies with that key (proof of possession: the
requester holds the private key). Only then are its subject and SANs read. Extensions other than
subjectAltName in the extensionRequest are reported, not honoured: usages and constraints come
from the profile, never from the requester.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from certforge.common.crypto.keys import (
    PrivateKey,
    PublicKey,
    as_supported_public_key,
    hash_algorithm,
    key_algorithm_of,
)
from certforge.common.crypto.names import (
    general_names_to_sans,
    name_to_subject,
    san_to_general_name,
    subject_to_name,
)
from certforge.common.domain import KeyAlgorithm, SignatureHash, SubjectFields
from certforge.common.errors import InvalidInput, Unprocessable
from certforge.common.template import San, check_san_count

CSR_FIELD = "csr"
MAX_CSR_PEM_BYTES = 32 * 1024
"""The largest CSR accepted, as PEM: room for a 16384-bit RSA key and 100 long SANs; 64 KiB CSRs
of 2,700 names were what an attacker sent."""
MAX_CSR_DER_BYTES = MAX_CSR_PEM_BYTES * 3 // 4
"""The same limit for DER (ACME's finalize): what 32 KiB of base64 carries."""


@dataclass(frozen=True)
class ParsedCsr:
    """What a verified CSR asks for.

    `unsupported_subject_oids` are subject attributes outside `SubjectFields` (dropped from the
    certificate unless policy refuses them); `ignored_extension_oids` are requested extensions
    other than subjectAltName, which the profile decides instead; `critical_extension_oids` are
    those of them the CSR marks critical (see `profile_extensions.check_csr_extensions`).
    """

    subject: SubjectFields
    sans: list[San]
    public_key: PublicKey
    key_algorithm: KeyAlgorithm
    unsupported_subject_oids: list[str] = field(default_factory=list)
    ignored_extension_oids: list[str] = field(default_factory=list)
    critical_extension_oids: list[str] = field(default_factory=list)


def parse_csr(pem: str | bytes) -> ParsedCsr:
    """Parse and verify a PEM CSR; errors are on field `csr` and never echo the input.

    `InvalidInput` when it does not decode, `Unprocessable` when the key is refused, the
    signature does not verify, or a subject attribute or SAN is not acceptable.
    """
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    _check_size(len(data), MAX_CSR_PEM_BYTES, "PEM")
    if data.count(b"-----BEGIN ") != 1:
        raise InvalidInput.on_field(CSR_FIELD, "expected exactly one PEM CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(data)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        raise InvalidInput.on_field(CSR_FIELD, "malformed or truncated PEM CSR") from None
    return _verified(csr)


def parse_csr_der(der: bytes) -> ParsedCsr:
    """Like `parse_csr` for DER (ACME's finalize sends base64url DER)."""
    _check_size(len(der), MAX_CSR_DER_BYTES, "DER")
    try:
        csr = x509.load_der_x509_csr(der)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        raise InvalidInput.on_field(CSR_FIELD, "malformed DER CSR") from None
    return _verified(csr)


def _check_size(size: int, limit: int, encoding: str) -> None:
    if size > limit:
        raise Unprocessable.on_field(
            CSR_FIELD, f"the CSR is {size} bytes of {encoding}; at most {limit} are accepted"
        )


def _verified(csr: x509.CertificateSigningRequest) -> ParsedCsr:
    try:
        raw_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Unprocessable.on_field(CSR_FIELD, "public key type is not supported") from None
    public_key = as_supported_public_key(raw_key, field=CSR_FIELD)
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise Unprocessable.on_field(
            CSR_FIELD, "signature does not verify (no proof of possession)"
        )
    try:
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise InvalidInput.on_field(CSR_FIELD, "malformed extension request") from None
    sans: list[San] = []
    ignored: list[str] = []
    critical: list[str] = []
    for extension in extensions:
        if isinstance(extension.value, x509.SubjectAlternativeName):
            check_san_count(len(extension.value), f"{CSR_FIELD}.sans")
            sans = general_names_to_sans(extension.value, field=f"{CSR_FIELD}.sans")
        else:
            ignored.append(extension.oid.dotted_string)
            if extension.critical:
                critical.append(extension.oid.dotted_string)
    with warnings.catch_warnings():
        # cryptography warns about over-long attributes while decoding; we refuse them below
        # with a proper error, so the warning would only be noise in the service's log.
        warnings.filterwarnings("ignore", message="Attribute's length", category=UserWarning)
        name = csr.subject
    subject, unsupported = name_to_subject(name, field=f"{CSR_FIELD}.subject")
    return ParsedCsr(
        subject=subject,
        sans=sans,
        public_key=public_key,
        key_algorithm=key_algorithm_of(public_key, field=CSR_FIELD),
        unsupported_subject_oids=unsupported,
        ignored_extension_oids=ignored,
        critical_extension_oids=critical,
    )


def build_csr(
    key: PrivateKey,
    subject: SubjectFields,
    sans: list[San] | None = None,
    *,
    signature_hash: SignatureHash | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR for `key` (clients, tests, renewal of externally held keys)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_to_name(subject))
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([san_to_general_name(san) for san in sans]),
            critical=False,
        )
    return builder.sign(key, hash_algorithm(signature_hash, key_algorithm_of(key)))


def csr_to_pem(csr: x509.CertificateSigningRequest) -> str:
    """PEM text of a CSR."""
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
