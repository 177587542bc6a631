"""Pre-issuance linting, as Boulder does: the to-be-signed certificate is first signed with a
throwaway key of the CA's key type and linted with pkilint's RFC 5280 validators; only a clean
certificate is then signed with the real CA key. A CA key never signs something malformed.

Two known pkilint false positives are tolerated, each only when every name it concerns passes
our own syntax check:
- `pkix.invalid_uri_syntax`, raised for URIs outside its web allowlist (`spiffe://…`,
  `http://localhost`) that RFC 5280 allows;
- `pkix.invalid_domain_name_syntax`, raised for a wildcard DNS name (`*.example.com`): RFC 5280
  leaves wildcards to the applications (RFC 6125, the CA/Browser Forum), and pkilint's RFC 5280
  validator reads `*` as a bad label; the DNS names must otherwise be preferred name syntax
  with `*` only as a whole leftmost label (`template.normalize_host_name`).
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
from certforge.common.template import normalize_host_name

_URI_SYNTAX = "pkix.invalid_uri_syntax"
_DOMAIN_SYNTAX = "pkix.invalid_domain_name_syntax"


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
    """Codes of pkilint ERROR-or-worse findings, less the tolerated false positives."""
    der = cert.public_bytes(serialization.Encoding.DER)
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
    results = _validator().validate(document.root)
    codes = [
        found.finding.code
        for result in results
        for found in result.finding_descriptions
        if found.finding.severity <= ValidationFindingSeverity.ERROR  # lower is more severe
    ]
    tolerated = {
        code
        for code, our_check in ((_URI_SYNTAX, _uris_valid), (_DOMAIN_SYNTAX, _wildcards_valid))
        if code in codes and our_check(cert)
    }
    return [code for code in codes if code not in tolerated]


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


def _wildcards_valid(cert: x509.Certificate) -> bool:
    """At least one DNS name is a wildcard (what pkilint refuses), and every DNS name passes our
    own check: preferred name syntax, `*` only as a whole leftmost label."""
    names: list[str] = []
    for ext in cert.extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName):
            names += ext.value.get_values_for_type(x509.DNSName)
    if not any(n.startswith("*.") for n in names):
        return False
    try:
        return all(normalize_host_name(n) == n for n in names)
    except ValueError:
        return False


def _uri_ok(uri: str) -> bool:
    parts = urlsplit(uri)
    return bool(parts.scheme) and bool(parts.netloc or parts.path) and uri.isprintable()
