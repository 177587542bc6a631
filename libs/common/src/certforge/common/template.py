"""What is to be issued, independent of how it was asked for (managed, CSR, renewal, CA).

The policy engine judges a template, the builder turns it into a certificate; both are pure.
SAN values are syntax-checked here so that everything downstream can trust them.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from urllib.parse import urlsplit

import idna
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

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


def _to_ascii(name: str) -> str:
    """A name with non-ASCII labels in its A-label form, by IDNA 2008 with UTS 46 mapping.

    Python's built-in `idna` codec is IDNA 2003, which maps `ß` to `ss`: `faß.example` would
    become `fass.example`, another domain with another owner. Browsers and registries follow
    IDNA 2008 (`xn--fa-hia.example`), so a certificate must name that. Labels are converted one
    by one, as a `*` wildcard label is no IDNA label; ASCII labels are left to the syntax check.
    """
    mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    return ".".join(
        label if label.isascii() else idna.alabel(label).decode("ascii")
        for label in mapped.split(".")
    )


def normalize_dns_name(value: str) -> str:
    """Lower-case, IDNA-encoded, syntax-checked; a leading `*.` wildcard label is allowed."""
    name = value.strip().rstrip(".").lower()
    try:
        name = name if name.isascii() else _to_ascii(name)
    except UnicodeError as exc:  # idna.IDNAError is one
        raise ValueError(f"invalid DNS name {value!r}: {exc}") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 1:
        raise ValueError(f"invalid DNS name {value!r}")
    for index, label in enumerate(labels):
        if label == "*" and index == 0 and len(labels) > 2:
            continue
        if not _LABEL.match(label):
            raise ValueError(f"invalid DNS name {value!r}")
    return name


def normalize_host_name(value: str) -> str:
    """A DNS name in a certificate: also a domain in "preferred name syntax" (RFC 5280 4.2.1.6,
    RFC 1034), as the issuer's pre-issuance lint (pkilint) requires: at least two labels and a
    top-level label ending in a letter, so `localhost` and `10.0.0.1` as DNS are refused here
    rather than failing at the issuer."""
    name = normalize_dns_name(value)
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError(f"invalid DNS name {value!r}: needs a domain, e.g. host.example.internal")
    if not labels[-1][-1].isalpha():
        raise ValueError(
            f"invalid DNS name {value!r}: the top-level label must end with a letter"
            " (an IP address is a SAN of type ip)"
        )
    return name


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
