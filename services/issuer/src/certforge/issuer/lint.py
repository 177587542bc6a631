"""Pre-issuance linting, as Boulder does: the to-be-signed certificate is first signed with a
throwaway key of the CA's key type and linted with pkilint's RFC 5280 validators; only a clean
certificate is then signed with the real CA key. A CA key never signs something malformed.

One known pkilint false positive is tolerated: `pkix.invalid_uri_syntax`, raised for URIs
outside its web allowlist (`spiffe://…`, `http://localhost`) that RFC 5280 allows; it is
ignored only when every URI in the certificate passes our own syntax check.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkilint import loader
from pkilint.pkix import certificate, extension, name
from pkilint.validation import ValidationFindingSeverity

from certforge.common.crypto.keys import PrivateKey, generate_private_key
from certforge.common.domain import KeyAlgorithm
from certforge.common.errors import Unprocessable

_TOLERATED = "pkix.invalid_uri_syntax"


@functools.cache
def _validator() -> Any:
    """The same validator container `lint_pkix_cert lint` builds (built once: ~100 ms)."""
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


@functools.cache
def lint_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """The throwaway signing key for linting, one per key type, made once per process."""
    return generate_private_key(algorithm)


def lint_errors(cert: x509.Certificate) -> list[str]:
    """Codes of pkilint ERROR-or-worse findings, less the tolerated false positive."""
    der = cert.public_bytes(serialization.Encoding.DER)
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
    results = _validator().validate(document.root)
    codes = [
        found.finding.code
        for result in results
        for found in result.finding_descriptions
        if found.finding.severity <= ValidationFindingSeverity.ERROR  # lower is more severe
    ]
    if codes and set(codes) == {_TOLERATED} and _uris_valid(cert):
        return []
    return codes


def check(cert: x509.Certificate) -> None:
    errors = lint_errors(cert)
    if errors:
        raise Unprocessable(
            detail="the certificate failed RFC 5280 linting before signing: " + ", ".join(errors)
        )


def _uris_valid(cert: x509.Certificate) -> bool:
    uris: list[str] = []
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            uris += value.get_values_for_type(x509.UniformResourceIdentifier)
        elif isinstance(value, x509.AuthorityInformationAccess):
            uris += [d.access_location.value for d in value]
        elif isinstance(value, x509.CRLDistributionPoints):
            uris += [n.value for p in value for n in (p.full_name or [])]
    return all(_uri_ok(u) for u in uris)


def _uri_ok(uri: str) -> bool:
    parts = urlsplit(uri)
    return bool(parts.scheme) and bool(parts.netloc or parts.path) and uri.isprintable()
