"""The extensions a profile may add to the certificates it issues, and their rules.

A profile declares them once; the issuer reads them from the profile when it signs (so a
renewal gets the profile's current extensions, as it gets its current policy) and
`crypto.certificates.build_certificate` puts them in the certificate. Everything a caller can
get wrong is refused here, when the profile is saved, with the field at fault:

- an OID that is not a dotted OID (RFC 5280 4.1.1.2: at least two arcs, first 0-2);
- a custom value that is not one well-formed DER element (`der_valid`);
- the same OID twice (RFC 5280 4.2: "a certificate MUST NOT include more than one instance of
  a particular extension");
- an OID Certforge sets itself or knows how to build (basic constraints, key usage, SAN, AIA,
  certificate policies, TLS feature, ...), as a custom extension: the typed field exists, and a
  raw copy would either duplicate or contradict what the builder writes.

Extensions a CSR asks for are never copied (`crypto.csr.parse_csr` reports them only): a
certificate carries what its profile allows and nothing a requester smuggles in.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from certforge.common.errors import Unprocessable

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

KNOWN_EXTENSIONS: dict[str, str] = {
    oid.dotted_string: oid._name
    for oid in vars(ExtensionOID).values()
    if isinstance(oid, x509.ObjectIdentifier)
}
"""Every extension cryptography knows by name (RFC 5280's and the CT, TLS-feature and OCSP
ones), by dotted OID: refused as custom extensions."""


def _oid(value: str) -> str:
    """A dotted OID (first arc 0-2, second below 40 under 0 and 1, as X.690 8.19 encodes)."""
    if not _OID.match(value):
        raise ValueError("not an OID: dotted decimal arcs, e.g. 1.3.6.1.4.1.55555.1")
    arcs = value.split(".")
    if arcs[0] in ("0", "1") and int(arcs[1]) >= 40:
        raise ValueError("not an OID: under arcs 0 and 1 the second arc is at most 39")
    return value


Oid = Annotated[
    str, Field(max_length=256, examples=["1.3.6.1.4.1.55555.1.1"]), AfterValidator(_oid)
]


def _base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 (standard alphabet, with padding)") from None


def _der_element(value: str) -> str:
    data = _base64(value)
    if not der_valid(data):
        raise ValueError("not one well-formed DER element (tag, definite length, contents)")
    return value


def _octets(value: str) -> str:
    _base64(value)
    return value


def _bounded(value: int) -> int:
    if value.bit_length() > 1024:
        raise ValueError("an integer of at most 1024 bits")
    return value


def der_valid(data: bytes) -> bool:
    """Whether `data` is exactly one DER TLV with definite, minimally encoded lengths, whose
    constructed contents are themselves such TLVs. Structure only: the value's meaning belongs
    to whoever defined the OID."""
    try:
        end = _tlv(data, 0, depth=0)
    except (IndexError, ValueError):
        return False
    return end == len(data)


def _tlv(data: bytes, at: int, depth: int) -> int:
    """The offset after the element at `at`; raises on anything not DER."""
    if depth > 32:
        raise ValueError("nested too deeply")
    tag = data[at]
    at += 1
    if tag & 0x1F == 0x1F:  # high tag number: base-128, no leading 0x80
        if data[at] == 0x80:
            raise ValueError("non-minimal tag")
        while data[at] & 0x80:
            at += 1
        at += 1
    first = data[at]
    at += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise ValueError("indefinite length is BER, not DER")
    else:
        count = first & 0x7F
        raw = data[at : at + count]
        if len(raw) != count or raw[0] == 0:
            raise ValueError("truncated or non-minimal length")
        length = int.from_bytes(raw, "big")
        if length < 0x80:
            raise ValueError("non-minimal length")
        at += count
    end = at + length
    if end > len(data):
        raise ValueError("truncated contents")
    if tag & 0x20:  # constructed: the contents are elements too
        while at < end:
            at = _tlv(data, at, depth + 1)
        if at != end:
            raise ValueError("contents overrun")
    return end


def _der(tag: int, contents: bytes) -> bytes:
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + contents


class CustomValue(BaseModel):
    """Exactly one of: raw DER, or a typed value Certforge encodes."""

    model_config = ConfigDict(extra="forbid")

    der: Annotated[str, AfterValidator(_der_element)] | None = Field(
        default=None, description="the extension value as base64 DER"
    )
    utf8_string: str | None = Field(default=None, max_length=4096)
    octet_string: Annotated[str, AfterValidator(_octets)] | None = Field(
        default=None, description="base64 of the octets"
    )
    boolean: bool | None = None
    integer: Annotated[int, AfterValidator(_bounded)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum(getattr(self, name) is not None for name in type(self).model_fields) != 1:
            raise ValueError("give exactly one of der, utf8_string, octet_string, boolean, integer")
        return self

    def encode(self) -> bytes:
        """The DER of the value (what goes in extnValue's OCTET STRING)."""
        if self.der is not None:
            return base64.b64decode(self.der)
        if self.utf8_string is not None:
            return _der(0x0C, self.utf8_string.encode("utf-8"))
        if self.octet_string is not None:
            return _der(0x04, base64.b64decode(self.octet_string))
        if self.boolean is not None:
            return _der(0x01, b"\xff" if self.boolean else b"\x00")
        if self.integer is not None:
            magnitude = ~self.integer if self.integer < 0 else self.integer
            size = magnitude.bit_length() // 8 + 1  # minimal two's complement, with its sign bit
            return _der(0x02, self.integer.to_bytes(size, "big", signed=True))
        return b""


class CustomExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oid: Oid
    critical: bool = Field(
        default=False, description="critical: relying parties that do not know it must reject"
    )
    value: CustomValue


def _cps_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or not value.isascii():
        raise ValueError("a CPS URI is an ASCII http(s) URL (RFC 5280 4.2.1.4: IA5String)")
    if not value.isprintable() or " " in value:
        raise ValueError("a CPS URI has no spaces or control characters")
    return value


class CertificatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oid: Oid
    cps_uri: Annotated[str, Field(max_length=1024), AfterValidator(_cps_uri)] | None = None
    user_notice: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="explicit text shown to relying parties (RFC 5280: at most 200 characters)",
    )


class SkiMethod(StrEnum):
    SHA1 = "sha1"
    """RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits."""
    SHA256 = "sha256"
    """RFC 7093 method 1: the leftmost 160 bits of SHA-256 of the same bits."""


class ProfileExtensions(BaseModel):
    """What a profile adds to, or leaves out of, its certificates beyond the defaults."""

    model_config = ConfigDict(extra="forbid")

    certificate_policies: list[CertificatePolicy] = Field(default_factory=list, max_length=16)
    must_staple: bool = Field(
        default=False, description="TLS feature status_request (RFC 7633), OCSP must-staple"
    )
    custom: list[CustomExtension] = Field(default_factory=list, max_length=16)
    aia: bool = Field(default=True, description="authority information access (OCSP, CA issuers)")
    crl_distribution_points: bool = True
    subject_key_identifier: SkiMethod = SkiMethod.SHA1

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        """One instance per extension and per policy, and no custom copy of a known one."""
        errors: list[InitErrorDetails] = []

        def refuse(loc: tuple[str | int, ...], message: str, oid: str) -> None:
            error = PydanticCustomError("value_error", message, {"oid": oid})
            errors.append(InitErrorDetails(type=error, loc=loc, input=oid))

        seen: set[str] = set()
        for index, policy in enumerate(self.certificate_policies):
            if policy.oid in seen:
                refuse(
                    ("certificate_policies", index, "oid"),
                    "policy {oid} is listed twice",
                    policy.oid,
                )
            seen.add(policy.oid)
        seen = set()
        for index, extension in enumerate(self.custom):
            loc = ("custom", index, "oid")
            if extension.oid in KNOWN_EXTENSIONS:
                name = KNOWN_EXTENSIONS[extension.oid]
                refuse(
                    loc,
                    f"{{oid}} is {name}, which Certforge sets itself or through its own field;"
                    " it cannot be a custom extension",
                    extension.oid,
                )
            elif extension.oid in seen:
                refuse(loc, "extension {oid} is listed twice", extension.oid)
            seen.add(extension.oid)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


_ALWAYS_CARRIED = frozenset(
    oid.dotted_string
    for oid in (
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    )
)
"""Extensions Certforge decides for every leaf, whatever a CSR asks (their values are ours)."""


def carried_extension_oids(extensions: ProfileExtensions) -> frozenset[str]:
    """Every extension a leaf of this profile carries."""
    carried = set(_ALWAYS_CARRIED) | {custom.oid for custom in extensions.custom}
    if extensions.certificate_policies:
        carried.add(ExtensionOID.CERTIFICATE_POLICIES.dotted_string)
    if extensions.must_staple:
        carried.add(ExtensionOID.TLS_FEATURE.dotted_string)
    if extensions.aia:
        carried.add(ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string)
    if extensions.crl_distribution_points:
        carried.add(ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string)
    return frozenset(carried)


def check_csr_extensions(
    critical_oids: list[str], extensions: ProfileExtensions, profile: str
) -> None:
    """Refuse a CSR that marks critical an extension the profile does not add.

    A requester that marks an extension critical says it must not be used without it; the
    certificate would silently lack it, so the request is refused instead. Non-critical
    requests (and critical ones for extensions every leaf carries, such as key usage or basic
    constraints, whose values Certforge decides) are ignored, as clients routinely send them.
    """
    missing = [oid for oid in critical_oids if oid not in carried_extension_oids(extensions)]
    if missing:
        names = ", ".join(KNOWN_EXTENSIONS.get(oid, oid) for oid in missing)
        raise Unprocessable.on_field(
            "csr",
            f"the CSR marks critical {names}, which profile {profile!r} does not add;"
            " remove it from the CSR or use a profile that adds it",
        )


DEFAULT_EXTENSIONS = ProfileExtensions()
"""Today's behaviour: AIA and CDP on, SHA-1 key identifiers, nothing added."""
