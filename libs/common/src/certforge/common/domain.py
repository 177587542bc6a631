"""The vocabulary of Certforge's domain, shared by every service and by the API contract.

Enum values are the wire names of the REST API and of events, so they never change; a new
algorithm or usage is a new member.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KeyAlgorithm(StrEnum):
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    EC_P256 = "EC_P256"
    EC_P384 = "EC_P384"
    EC_P521 = "EC_P521"
    ED25519 = "ED25519"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("RSA_")

    @property
    def is_ec(self) -> bool:
        return self.value.startswith("EC_")


class SignatureHash(StrEnum):
    """Hash of the signature; the scheme (RSA PKCS#1 v1.5, ECDSA) follows from the signer's key.

    Ed25519 signers take no hash: their signature algorithm is `None` everywhere.
    """

    SHA256 = "SHA256"
    SHA384 = "SHA384"
    SHA512 = "SHA512"


class KeyUsage(StrEnum):
    DIGITAL_SIGNATURE = "digital_signature"
    CONTENT_COMMITMENT = "content_commitment"
    KEY_ENCIPHERMENT = "key_encipherment"
    DATA_ENCIPHERMENT = "data_encipherment"
    KEY_AGREEMENT = "key_agreement"
    KEY_CERT_SIGN = "key_cert_sign"
    CRL_SIGN = "crl_sign"
    ENCIPHER_ONLY = "encipher_only"
    DECIPHER_ONLY = "decipher_only"


class ExtendedKeyUsage(StrEnum):
    SERVER_AUTH = "server_auth"
    CLIENT_AUTH = "client_auth"
    CODE_SIGNING = "code_signing"
    EMAIL_PROTECTION = "email_protection"
    TIME_STAMPING = "time_stamping"
    OCSP_SIGNING = "ocsp_signing"


class SanType(StrEnum):
    DNS = "dns"
    IP = "ip"
    EMAIL = "email"
    URI = "uri"


class CAType(StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"
    EXTERNAL = "external"


class CAStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Role(StrEnum):
    """Per-application roles; `product-admin` is a global flag on the identity instead."""

    APPLICATION_ADMIN = "application-admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class RequestMethod(StrEnum):
    MANAGED = "managed"
    CSR = "csr"


class EnrollmentChannel(StrEnum):
    """How a request came in: each channel is switched on separately on an attachment, and the
    issuer checks the one the request came through."""

    API = "api"
    ACME = "acme"


class RequestKind(StrEnum):
    """What a certificate request asks for: a new certificate, or the successor of one."""

    ISSUE = "issue"
    RENEW = "renew"


class RequestStatus(StrEnum):
    PENDING = "pending"
    ISSUED = "issued"
    FAILED = "failed"
    REJECTED = "rejected"


class CertificateStatus(StrEnum):
    ACTIVE = "active"
    RENEWED = "renewed"
    REVOKED = "revoked"
    EXPIRED = "expired"


_PRINTABLE: dict[str, Any] = {"json_schema_extra": {"pattern": "^[^\\x00-\\x1f\\x7f]*$"}}
"""The control-character rule of `SubjectFields`, stated in its JSON schema."""


class SubjectFields(BaseModel):
    """Distinguished-name attributes a caller may set; all optional, empty means absent."""

    model_config = ConfigDict(extra="forbid")

    common_name: str | None = Field(default=None, min_length=1, max_length=64, **_PRINTABLE)
    organization: str | None = Field(default=None, min_length=1, max_length=64, **_PRINTABLE)
    organizational_unit: str | None = Field(default=None, min_length=1, max_length=64, **_PRINTABLE)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")
    state: str | None = Field(default=None, min_length=1, max_length=128, **_PRINTABLE)
    locality: str | None = Field(default=None, min_length=1, max_length=128, **_PRINTABLE)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # PostgreSQL cannot store NUL, and control characters in a name only mislead.
        if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not contain control characters")
        return value

    def present(self) -> dict[str, str]:
        """The attributes that are set, by field name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def merged_over(self, defaults: SubjectFields | None) -> SubjectFields:
        """These fields, each unset one taken from `defaults`."""
        if defaults is None:
            return self
        return SubjectFields(**{**defaults.present(), **self.present()})


class RevocationReason(StrEnum):
    """RFC 5280 CRLReason names (value 7 is unused; removeFromCRL applies to delta CRLs only)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "caCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"


class RenewalKey(StrEnum):
    """Where the key of a renewed certificate comes from."""

    NEW = "new"
    REUSE = "reuse"
    CSR = "csr"
