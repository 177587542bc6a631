"""Pre-issuance linting, as Boulder does: the to-be-signed certificate is first signed with a
throwaway key of the CA's key type and linted with pkilint's RFC 5280 validators; only a clean
certificate is then signed with the real CA key. A CA key never signs something malformed.

pkilint walks a pyasn1 tree of a few hundred nodes per certificate (≈ 5 ms of Python), while
the certificates of one profile differ only in values. `LintCache` lints one certificate per
*shape* (`lint_shape`: the certificate with each varying value replaced by the facts about it
pkilint's validators decide on) and reuses that verdict for every certificate of the same shape;
a certificate whose shape is new, or cannot be computed, is linted in full.

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
from collections import OrderedDict
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
from certforge.issuer.lint_shape import Shape, shape_of

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
    """Codes of pkilint ERROR-or-worse findings, less the tolerated false positives: the full
    lint, every validator on this certificate."""
    return _tolerated(cert, _pkilint_codes(cert))


def _pkilint_codes(cert: x509.Certificate) -> tuple[str, ...]:
    der = cert.public_bytes(serialization.Encoding.DER)
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
    results = _validator().validate(document.root)
    return tuple(
        found.finding.code
        for result in results
        for found in result.finding_descriptions
        if found.finding.severity <= ValidationFindingSeverity.ERROR  # lower is more severe
    )


def _tolerated(cert: x509.Certificate, codes: tuple[str, ...]) -> list[str]:
    """`codes` less the known false positives, each only when our own check of every name it
    concerns passes (judged on this certificate's values, never cached)."""
    tolerated = {
        code
        for code, our_check in ((_URI_SYNTAX, _uris_valid), (_DOMAIN_SYNTAX, _wildcards_valid))
        if code in codes and our_check(cert)
    }
    return [code for code in codes if code not in tolerated]


class LintCache:
    """pkilint's verdict per certificate shape, for the `size` most recently seen shapes.

    A profile's certificates share a handful of shapes (key type, SAN kinds, subject
    attributes), so after the first certificate of each, linting costs the shape (≈ 0.1 ms)
    instead of pkilint (≈ 5 ms). Bounded, least recently used out: varied requests cannot grow
    it without end. `size=0` lints every certificate in full."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._verdicts: OrderedDict[Shape, tuple[str, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def errors(self, cert: x509.Certificate) -> list[str]:
        """What `lint_errors(cert)` answers."""
        shape = shape_of(cert) if self._size > 0 else None
        if shape is None:
            self.misses += 1
            return lint_errors(cert)
        codes = self._verdicts.get(shape)
        if codes is None:
            self.misses += 1
            codes = self._verdicts[shape] = _pkilint_codes(cert)
            if len(self._verdicts) > self._size:
                self._verdicts.popitem(last=False)
        else:
            self.hits += 1
            self._verdicts.move_to_end(shape)
        return _tolerated(cert, codes)

    def check(self, cert: x509.Certificate) -> None:
        _refuse(self.errors(cert))


def check(cert: x509.Certificate) -> None:
    """Lint `cert` in full; raise `Unprocessable` with the findings when it fails."""
    _refuse(lint_errors(cert))


def _refuse(errors: list[str]) -> None:
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
