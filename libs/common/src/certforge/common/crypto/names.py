"""Between Certforge's `SubjectFields`/`San` and X.509 names.

Subjects are written in the conventional most-significant-first order C, ST, L, O, OU, CN, one
attribute per RDN, so they read the same in every tool. Reading is lossless about what it cannot
model: attributes outside `SubjectFields` are returned, not dropped, so the caller (policy) decides
whether to refuse a CSR carrying them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from certforge.common.domain import SanType, SubjectFields
from certforge.common.errors import FieldError, Unprocessable
from certforge.common.template import San

# Field name and OID, in the order they are written.
SUBJECT_ATTRIBUTES: tuple[tuple[str, x509.ObjectIdentifier], ...] = (
    ("country", NameOID.COUNTRY_NAME),
    ("state", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("common_name", NameOID.COMMON_NAME),
)
_FIELD_OF = {oid: name for name, oid in SUBJECT_ATTRIBUTES}


class ParsedName(NamedTuple):
    """A name read into `SubjectFields`, plus the dotted OIDs of attributes it could not hold.

    `unsupported` lists attribute types Certforge does not model, multi-valued RDNs' extra
    members, and repeated attributes (a second OU), in the order they appear.
    """

    subject: SubjectFields
    unsupported: list[str]


def subject_to_name(subject: SubjectFields) -> x509.Name:
    """The X.509 name of `subject`; empty when nothing is set (allowed for leaves with SANs)."""
    present = subject.present()
    return x509.Name(
        [
            x509.NameAttribute(oid, present[field])
            for field, oid in SUBJECT_ATTRIBUTES
            if field in present
        ]
    )


def name_to_subject(name: x509.Name, *, field: str = "subject") -> ParsedName:
    """`name` as `SubjectFields`, refusing values `SubjectFields` would refuse from a caller.

    Raises `Unprocessable` naming `field.<attribute>` when, e.g., a CN is longer than 64
    characters (RFC 5280's upper bound) or a country is not two upper-case letters.
    """
    values: dict[str, str] = {}
    unsupported: list[str] = []
    for rdn in name.rdns:
        for index, attribute in enumerate(rdn):
            known = _FIELD_OF.get(attribute.oid)
            if (
                known is None
                or index > 0
                or known in values
                or not isinstance(attribute.value, str)
            ):
                unsupported.append(attribute.oid.dotted_string)
                continue
            values[known] = attribute.value
    try:
        subject = SubjectFields(**values)
    except ValidationError as exc:
        errors = [
            FieldError(
                ".".join([field, *(str(part) for part in error["loc"])]),
                _short(error["msg"]),
            )
            for error in exc.errors()
        ]
        raise Unprocessable(
            detail=f"{field}: " + "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors=errors,
        ) from None
    return ParsedName(subject, unsupported)


def _short(message: str) -> str:
    return message.removeprefix("Value error, ")


def san_to_general_name(san: San) -> x509.GeneralName:
    """The `GeneralName` for a (syntax-checked, normalised) SAN."""
    if san.type is SanType.DNS:
        return x509.DNSName(san.value)
    if san.type is SanType.IP:
        return x509.IPAddress(ipaddress.ip_address(san.value))
    if san.type is SanType.EMAIL:
        return x509.RFC822Name(san.value)
    return x509.UniformResourceIdentifier(san.value)


_GENERAL_NAME_LABELS: dict[type[x509.GeneralName], str] = {
    x509.OtherName: "otherName",
    x509.DirectoryName: "directoryName",
    x509.RegisteredID: "registeredID",
}


def general_names_to_sans(names: Iterable[x509.GeneralName], *, field: str = "sans") -> list[San]:
    """SANs from general names, each validated like a caller's SAN; duplicates removed.

    Kinds Certforge cannot issue (otherName such as UPN, directoryName, registeredID) raise
    `Unprocessable` on `field` instead of being dropped, so nobody receives a certificate
    silently missing a name they asked for.
    """
    sans: list[San] = []
    for index, general_name in enumerate(names):
        where = f"{field}.{index}"
        san_type: SanType
        value: str
        if isinstance(general_name, x509.DNSName):
            san_type, value = SanType.DNS, general_name.value
        elif isinstance(general_name, x509.IPAddress):
            if not isinstance(general_name.value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise Unprocessable.on_field(where, "IP networks are not allowed as a SAN")
            san_type, value = SanType.IP, str(general_name.value)
        elif isinstance(general_name, x509.RFC822Name):
            san_type, value = SanType.EMAIL, general_name.value
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            san_type, value = SanType.URI, general_name.value
        else:
            label = _GENERAL_NAME_LABELS.get(type(general_name), type(general_name).__name__)
            raise Unprocessable.on_field(where, f"{label} SANs are not supported")
        try:
            san = San(type=san_type, value=value)
        except ValidationError as exc:
            message = "; ".join(_short(error["msg"]) for error in exc.errors())
            raise Unprocessable.on_field(where, message) from None
        if san not in sans:
            sans.append(san)
    return sans
