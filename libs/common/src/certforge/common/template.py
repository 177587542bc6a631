"""What is to be issued, independent of how it was asked for (managed, CSR, renewal, CA).

The policy engine judges a template, the builder turns it into a certificate; both are pure.
SAN values are syntax-checked here so that everything downstream can trust them.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from certforge.common.domain import (
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    SanType,
    SignatureHash,
    SubjectFields,
)
from certforge.common.errors import Unprocessable
from certforge.common.names import dns_name, host_name

_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")

MAX_SANS = 100
"""The most SANs one certificate may carry, however it is asked for (JSON, CSR, ACME order)."""


def normalize_dns_name(value: str) -> str:
    """Lower-case, IDNA-encoded, syntax-checked; a leading `*.` wildcard label is allowed.
    The one conversion of a DNS name is `names.dns_name`; this is its name in the template."""
    return dns_name(value)


def normalize_host_name(value: str) -> str:
    """A DNS name in a certificate (`names.host_name`): a domain in preferred name syntax."""
    return host_name(value)


def check_san_count(count: int, field: str) -> None:
    """Refuse more SANs than `MAX_SANS`, on `field`: the same limit for every way of asking."""
    if count > MAX_SANS:
        raise Unprocessable.on_field(
            field, f"{count} SANs requested; a certificate carries at most {MAX_SANS}"
        )


def _normalize_email(value: str) -> str:
    local, sep, domain = value.strip().rpartition("@")
    # RFC 5321 dot-atom: no leading, trailing or doubled dot in the local part.
    if (
        not sep
        or not _EMAIL_LOCAL.match(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        raise ValueError(f"invalid email address {value!r}")
    try:
        return f"{local}@{normalize_host_name(domain)}"
    except ValueError:
        raise ValueError(f"invalid email address {value!r}") from None


def _normalize_uri(value: str) -> str:
    cleaned = value.strip()
    parts = urlsplit(cleaned)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in value):
        raise ValueError(f"invalid URI {value!r}: needs a scheme, e.g. spiffe://example.org/svc")
    # An X.509 URI is an IA5String (RFC 5280 4.2.1.6): percent-encode anything else.
    if not (cleaned.isascii() and cleaned.isprintable()):
        raise ValueError(
            f"invalid URI {value!r}: only printable ASCII; percent-encode other characters"
        )
    return cleaned


class San(BaseModel):
    """One subject alternative name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SanType
    value: str = Field(min_length=1, max_length=1024)

    @field_validator("value")
    @classmethod
    def _check_syntax(cls, value: str, info: ValidationInfo) -> str:
        """Checked per type on `value`, so an error names `sans.N.value`, not the whole SAN."""
        san_type = info.data.get("type")
        if san_type is None:  # the type itself was refused; that error says enough
            return value
        if san_type is SanType.DNS:
            return normalize_host_name(value)
        if san_type is SanType.IP:
            try:
                return str(ipaddress.ip_address(value.strip()))
            except ValueError as exc:
                raise ValueError(f"invalid IP address {value!r}") from exc
        if san_type is SanType.EMAIL:
            return _normalize_email(value)
        return _normalize_uri(value)


class CertificateTemplate(BaseModel):
    """Every decision about a certificate except its serial number and its issuer."""

    model_config = ConfigDict(extra="forbid")

    subject: SubjectFields = SubjectFields()
    sans: list[San] = Field(default_factory=list)
    key_algorithm: KeyAlgorithm
    signature_hash: SignatureHash | None = None
    key_usages: list[KeyUsage] = Field(default_factory=list)
    extended_key_usages: list[ExtendedKeyUsage] = Field(default_factory=list)
    not_before: datetime
    not_after: datetime
    is_ca: bool = False
    path_length: int | None = Field(default=None, ge=0)

    @field_validator("sans")
    @classmethod
    def _dedupe_sans(cls, sans: list[San]) -> list[San]:
        return list(dict.fromkeys(sans))

    @model_validator(mode="after")
    def _check_window(self) -> CertificateTemplate:
        if self.not_before.tzinfo is None or self.not_after.tzinfo is None:
            raise ValueError("not_before and not_after must carry a timezone")
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        return self

    @property
    def validity(self) -> float:
        """Length of the validity period in seconds."""
        return (self.not_after - self.not_before).total_seconds()
