"""The *shape* of a certificate: everything pkilint's RFC 5280 validators can see in it, with
each value that changes from one certificate of a profile to the next replaced by the facts
about it those validators decide on.

Two certificates of the same shape get the same pkilint ERROR findings, so one full lint per
shape is enough (`lint.LintCache`). What varies per certificate, and what stands in for it:

- serial number: whether it is in pkilint's range (1 … 2^159 - 1);
- validity: each time's ASN.1 type (UTCTime from 1950 to 2049, GeneralizedTime otherwise) and
  the order of the two;
- subject attribute values: the string type, the length's position among the size bounds of
  pkilint's attribute decoders (so a value over ub-common-name is another shape), the alphabets
  it fits; e-mail address and domain component attributes, which pkilint compares with the
  SANs or parses as a domain, are kept literally;
- public key: its algorithm and size (the key bits are never judged at ERROR level);
- subject key identifier: its length;
- SANs: per name its type and, computed with the same `validators` calls pkilint makes, its
  syntax verdict and domain-length verdict; other name types literally.

Everything else (issuer, signature algorithm, every other extension's DER, criticality, order)
is part of the shape byte for byte, so a changed profile or CA is a new shape. A certificate
whose shape cannot be computed (something unexpected in it) has none: it is linted in full.
`tests/unit/test_lint_shape.py` checks the claim against the full linter with hypothesis.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import warnings
from collections.abc import Hashable
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import validators
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pkilint.pkix import name as pkix_name
from pyasn1.type import constraint

Shape = Hashable

_MAX_SERIAL = (1 << 159) - 1
"""pkilint's CertificateSerialNumberValidator range (RFC 5280 4.1.2.2: 20 octets, positive)."""
_MAX_DOMAIN = 253
"""pkilint's DomainNameLengthValidator limit."""
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_LITERAL_ATTRIBUTES = frozenset({NameOID.EMAIL_ADDRESS, NameOID.DOMAIN_COMPONENT})


def shape_of(cert: x509.Certificate) -> Shape | None:
    """The certificate's shape, or None when it holds something this module does not model."""
    try:
        with warnings.catch_warnings():  # cryptography warns of over-long names; pkilint judges
            warnings.simplefilter("ignore")
            return _shape(cert)
    except Exception:  # an unmodelled corner: the caller lints in full, never guesses
        return None


def _shape(cert: x509.Certificate) -> Shape:
    extensions = cert.extensions
    try:
        sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san_emails = frozenset(sans.get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        san_emails = frozenset()
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    hash_algorithm = cert.signature_hash_algorithm
    return (
        cert.version.value,
        cert.signature_algorithm_oid.dotted_string,
        hash_algorithm.name if hash_algorithm is not None else None,
        type(cert.signature_algorithm_parameters).__name__,
        0 < cert.serial_number <= _MAX_SERIAL,
        cert.issuer.public_bytes(),
        _time_type(not_before),
        _time_type(not_after),
        (not_after > not_before) - (not_after < not_before),
        tuple(
            tuple(_attribute(attribute, san_emails) for attribute in rdn)
            for rdn in cert.subject.rdns
        ),
        _key(cert.public_key()),
        tuple((ext.oid.dotted_string, ext.critical, _extension(ext.value)) for ext in extensions),
    )


def _time_type(moment: datetime) -> str:
    """cryptography encodes 1950-2049 as UTCTime, anything else as GeneralizedTime (RFC 5280
    4.1.2.5), which is what pkilint's time-type validators judge."""
    return "utc" if 1950 <= moment.year < 2050 else "generalized"


@functools.cache
def _size_bounds() -> tuple[int, ...]:
    """Every size bound in pkilint's attribute decoders (1, 2, 40, 64, 128, 255, 32768): a
    value's length relative to these decides whether its decoding passes."""
    found: set[int] = set()

    def constraints(c: Any) -> None:
        if isinstance(c, constraint.ValueSizeConstraint):
            found.update(int(v) for v in c._values if v != float("inf"))
            return
        for sub in getattr(c, "_values", ()):
            if isinstance(sub, constraint.AbstractConstraint):
                constraints(sub)

    def walk(spec: Any, depth: int) -> None:
        constraints(spec.subtypeSpec)
        inner = getattr(spec, "componentType", None)
        if inner is None or depth > 4:
            return
        if hasattr(inner, "namedTypes"):
            for named in inner.namedTypes:
                walk(named.asn1Object, depth + 1)
        else:
            walk(inner, depth + 1)

    for spec in pkix_name.ATTRIBUTE_TYPE_MAPPINGS.values():
        walk(spec, 0)
    return tuple(sorted(found))


def _attribute(attribute: x509.NameAttribute[Any], san_emails: frozenset[str]) -> Hashable:
    value = attribute.value
    oid = attribute.oid.dotted_string
    string_type = attribute._type.value
    if not isinstance(value, str):
        return (oid, string_type, bytes(value))
    if attribute.oid in _LITERAL_ATTRIBUTES:
        return (oid, string_type, value, value in san_emails)
    bounds = _size_bounds()
    length = len(value)
    return (
        oid,
        string_type,
        bisect.bisect_left(bounds, length),
        bisect.bisect_right(bounds, length),
        value.isascii(),
        _PRINTABLE.issuperset(value),
        all(ord(c) < 0x100 for c in value),
        all(ord(c) < 0x10000 for c in value),
    )


def _key(key: Any) -> Hashable:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ("ec", key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return ("rsa", key.key_size, key.public_numbers().e)
    return (type(key).__name__,)


def _extension(value: x509.ExtensionType) -> Hashable:
    if isinstance(value, x509.SubjectAlternativeName):
        return tuple(_general_name(n) for n in value)
    if isinstance(value, x509.SubjectKeyIdentifier):
        return ("ski", len(value.digest))
    return value.public_bytes()


def _general_name(general_name: x509.GeneralName) -> Hashable:
    """What pkilint's GeneralNameValidatorContainer decides about a SAN entry, by its own
    predicates (`pkilint.pkix.general_name`)."""
    if isinstance(general_name, x509.DNSName):
        value = general_name.value
        return (
            "dns",
            value.isascii(),
            _verdict(validators.domain, value),
            len(value) > _MAX_DOMAIN,
        )
    if isinstance(general_name, x509.UniformResourceIdentifier):
        value = general_name.value
        if value.casefold().startswith("ldap://"):
            return ("uri", "ldap", value)
        host = urlparse(value).hostname or ""
        return ("uri", value.isascii(), _verdict(validators.url, value), len(host) > _MAX_DOMAIN)
    if isinstance(general_name, x509.RFC822Name):
        value = general_name.value
        parts = value.split("@", maxsplit=1)
        domain = parts[1] if len(parts) == 2 else ""
        return (
            "email",
            value.isascii(),
            _verdict(validators.email, value),
            len(domain) > _MAX_DOMAIN,
        )
    if isinstance(general_name, x509.IPAddress):
        address = general_name.value
        if isinstance(address, ipaddress.IPv4Network | ipaddress.IPv6Network):
            return ("ip", "network", str(address))
        return ("ip", len(address.packed))
    return ("literal", repr(general_name))


def _verdict(check: Any, value: str) -> bool:
    """pkilint's `validators_predicate`: only a literal True passes."""
    result = check(value)
    return isinstance(result, bool) and result
