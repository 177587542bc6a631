"""Shapes of certificate requests and certificates (names are the public contract)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from certforge.api.schemas.common import Strict, examples
from certforge.common.crypto.csr import MAX_CSR_PEM_BYTES
from certforge.common.domain import (
    CertificateStatus,
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    RequestMethod,
    RequestStatus,
    SignatureHash,
    SubjectFields,
)
from certforge.common.durations import Duration
from certforge.common.issuance import Metadata
from certforge.common.template import MAX_SANS, San

_MANAGED_ONLY = (
    "common_name",
    "organization",
    "organizational_unit",
    "country",
    "state",
    "locality",
    "key_algorithm",
)


class CertificateRequestCreate(Strict):
    model_config = examples(
        {
            "profile": "web-server",
            "common_name": "www.example.com",
            "sans": [{"type": "dns", "value": "www.example.com"}],
            "metadata": {"team": "web"},
        }
    )

    profile: str = Field(description="slug or id of a profile attached to the application")
    method: RequestMethod = RequestMethod.MANAGED
    common_name: str | None = Field(default=None, min_length=1, max_length=64)
    organization: str | None = Field(default=None, min_length=1, max_length=64)
    organizational_unit: str | None = Field(default=None, min_length=1, max_length=64)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    state: str | None = Field(default=None, min_length=1, max_length=128)
    locality: str | None = Field(default=None, min_length=1, max_length=128)
    sans: list[San] = Field(default_factory=list, max_length=MAX_SANS)
    key_algorithm: KeyAlgorithm | None = Field(default=None, description="managed only")
    signature_algorithm: SignatureHash | None = None
    ttl: Duration | None = Field(default=None, description="e.g. 30d; or not_before/not_after")
    not_before: datetime | None = None
    not_after: datetime | None = None
    key_usages: list[KeyUsage] | None = None
    extended_key_usages: list[ExtendedKeyUsage] | None = None
    metadata: Metadata = Field(default_factory=dict)
    csr: str | None = Field(
        default=None, max_length=MAX_CSR_PEM_BYTES, description="PEM, method csr only"
    )

    @model_validator(mode="after")
    def _check_method(self) -> CertificateRequestCreate:
        """Rules across fields, each error located on the field to change (not on `body`)."""
        errors: list[InitErrorDetails] = []

        def refuse(name: str, message: str) -> None:
            error = PydanticCustomError("value_error", message)
            errors.append(
                InitErrorDetails(type=error, loc=(name,), input=getattr(self, name, None))
            )

        if self.method is RequestMethod.CSR:
            if not self.csr:
                refuse("csr", "csr is required with method csr")
            for name in _MANAGED_ONLY:
                if getattr(self, name) is not None:
                    refuse(name, "taken from the CSR with method csr; leave it out")
            if self.sans:
                refuse("sans", "taken from the CSR with method csr; leave it out")
        elif self.csr is not None:
            refuse("csr", "csr is only accepted with method csr")
        if self.ttl is not None and self.not_after is not None:
            refuse("ttl", "give ttl or not_after, not both")
        for name in ("not_before", "not_after"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                refuse(name, "must carry a timezone, e.g. 2030-01-01T00:00:00Z")
        try:  # the subject's own rules (e.g. no control characters), on the request's fields
            self.subject()
        except ValidationError as exc:
            for error in exc.errors():
                refuse(str(error["loc"][0]), error["msg"].removeprefix("Value error, "))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def subject(self) -> SubjectFields:
        return SubjectFields(
            common_name=self.common_name,
            organization=self.organization,
            organizational_unit=self.organizational_unit,
            country=self.country,
            state=self.state,
            locality=self.locality,
        )


class IssuedCertificate(BaseModel):
    id: UUID
    serial_number: str
    not_before: datetime
    not_after: datetime
    certificate: str = Field(description="PEM")
    chain: str = Field(description="PEM, issuing CA first, root last")
    private_key: str | None = Field(
        default=None, description="PKCS#8 PEM; managed keys only, for operators and admins"
    )


class CertificateRequestPublic(BaseModel):
    id: UUID
    application: str
    profile: str
    method: RequestMethod
    kind: str = Field(description="issue or renew")
    status: RequestStatus
    error: str | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)
    created_at: datetime
    completed_at: datetime | None = None
    certificate_id: UUID | None = None
    certificate: IssuedCertificate | None = None


class ExtensionSummary(BaseModel):
    oid: str = Field(description="dotted OID")
    name: str = Field(description="e.g. keyUsage, TLSFeature; unknown for custom OIDs")
    critical: bool


class CertificatePublic(BaseModel):
    id: UUID
    application: str
    profile: str
    ca_id: UUID
    request_id: UUID
    method: RequestMethod
    status: CertificateStatus
    serial_number: str
    subject: str = Field(description="RFC 4514 distinguished name")
    common_name: str | None
    sans: list[San]
    key_algorithm: KeyAlgorithm
    signature_algorithm: SignatureHash | None
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    metadata: dict[str, str]
    auto_renew: bool
    renew_before_days: int
    renew_at: datetime = Field(description="when the renewer renews it (if auto-renew is on)")
    renewal_error: str | None = Field(default=None, description="why the last renewal failed")
    renewal_attempts: int = Field(default=0, description="failed renewals since the last success")
    has_private_key: bool
    extensions: list[ExtensionSummary] = Field(
        default_factory=list, description="the certificate's extensions, in its order"
    )
    renewed_from_id: UUID | None
    renewed_by_id: UUID | None
    revoked_at: datetime | None
    revocation_reason: str | None
    early_renewal_requested_at: datetime | None = Field(
        default=None,
        description="when an admin asked for this certificate to be renewed early: ACME clients "
        "see a renewal window that opened then (ARI), and an auto-renewed certificate is due",
    )
    created_at: datetime
