"""Shapes of the REST API around ACME: enrollment settings, EAB keys, accounts and orders.

These are what application admins and auditors see of ACME through `/api/v1`; the protocol's
own messages (RFC 8555 JSON) belong to the ACME endpoints, not here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from certforge.api.schemas.common import OptionalName, Strict, examples
from certforge.common.acme import ALL_CHALLENGE_TYPES, ChallengeType


def _http_url(value: str) -> str:
    """An absolute http(s) URL, kept as written: ACME clients show it to people (the terms of
    service) and compare it with what they agreed to, so it is not normalised."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an absolute http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    return value


HttpUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]


def _unique(types: list[ChallengeType]) -> list[ChallengeType]:
    if len(set(types)) != len(types):
        raise ValueError("must not name a challenge type twice")
    return types


ChallengeTypes = Annotated[
    list[ChallengeType], Field(min_length=1, max_length=3), AfterValidator(_unique)
]


_HTTP_URL: dict[str, Any] = {"pattern": "^https?://[A-Za-z0-9.-]+(?::[0-9]{1,4})?(?:/[^\\s@]*)?$"}
"""A safe subset of what `_http_url` accepts, for the document: `format: uri` alone admits any
scheme (or none), credentials and impossible ports."""


class AcmeEnrollment(Strict):
    """ACME enrollment on an attached profile: whether its directory answers, and its rules."""

    model_config = examples(
        {
            "enabled": True,
            "eab_required": True,
            "challenge_types": ["http-01", "dns-01"],
            "renew_before_days": 30,
            "terms_of_service": "https://pki.example.com/terms",
            "website": "https://pki.example.com/",
        },
        {"enabled": True},
    )

    enabled: bool = Field(description="whether ACME clients may use this profile's directory")
    eab_required: bool = Field(
        default=False,
        description="new accounts must be bound to an EAB key of this enrollment "
        "(RFC 8555 §7.3.4); the directory's meta says externalAccountRequired",
    )
    challenge_types: ChallengeTypes = Field(
        default_factory=lambda: list(ALL_CHALLENGE_TYPES),
        description="the challenges offered, in this order (wildcards always get dns-01 only, "
        "IP addresses never dns-01)",
    )
    renew_before_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="ARI (RFC 9773): the suggested renewal window opens this many days before "
        "expiry",
    )
    terms_of_service: HttpUrl | None = Field(
        default=None,
        description="the directory's meta.termsOfService",
        json_schema_extra=_HTTP_URL,
    )
    website: HttpUrl | None = Field(
        default=None, description="the directory's meta.website", json_schema_extra=_HTTP_URL
    )


class AcmeEnrollmentPublic(BaseModel):
    enabled: bool
    eab_required: bool
    challenge_types: list[ChallengeType]
    renew_before_days: int
    terms_of_service: str | None
    website: str | None
    directory_url: str = Field(
        description="where ACME clients start (it answers while ACME enrollment is enabled), "
        "built from the URL this request came in on"
    )


class EabKeyCreate(Strict):
    model_config = examples({"name": "cert-manager in cluster prod-1"}, {})

    name: OptionalName = Field(default="", description="a label to recognise the key by")


class EabKeyStatus(StrEnum):
    UNUSED = "unused"
    BOUND = "bound"
    REVOKED = "revoked"


class EabKeyPublic(BaseModel):
    key_id: str = Field(description="the EAB key identifier (the client's `--eab-kid`)")
    name: str
    status: EabKeyStatus = Field(
        description="unused, bound (to `account_id`) or revoked (binds no new account)"
    )
    created_at: datetime
    created_by: UUID | None = Field(description="the identity that created it")
    revoked_at: datetime | None
    account_id: UUID | None = Field(description="the ACME account it was bound to")
    bound_at: datetime | None


class NewEabKey(BaseModel):
    key_id: str = Field(description="the EAB key identifier (the client's `--eab-kid`)")
    hmac_key: str = Field(
        description="base64url of the 32-byte HMAC key (the client's `--eab-hmac-key`); shown "
        "only in this answer, it cannot be read again"
    )
    name: str
    created_at: datetime


class AccountStatus(StrEnum):
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AcmeAccountPublic(BaseModel):
    id: UUID
    profile: str = Field(description="slug of the profile whose directory it registered at")
    status: AccountStatus
    contact: list[str] = Field(description="the contact URLs the client gave (mailto:)")
    key_thumbprint: str = Field(description="RFC 7638 JWK thumbprint of the account key")
    eab_key_id: str | None = Field(description="the EAB key it was bound with, if any")
    terms_agreed: bool
    created_at: datetime
    updated_at: datetime


class AcmeAccountDetail(AcmeAccountPublic):
    orders: dict[OrderStatus, int] = Field(description="how many of its orders are in each status")


class AcmeIdentifier(BaseModel):
    type: str = Field(description="dns or ip")
    value: str


class AcmeChallengePublic(BaseModel):
    id: UUID
    type: ChallengeType
    status: str = Field(description="pending, processing, valid or invalid")
    error: dict[str, Any] | None = Field(description="the ACME problem of a failed validation")
    attempts: int
    validated_at: datetime | None


class AcmeAuthorizationPublic(BaseModel):
    id: UUID
    identifier: AcmeIdentifier
    wildcard: bool
    status: str = Field(description="pending, valid, invalid, deactivated, expired or revoked")
    expires_at: datetime
    challenges: list[AcmeChallengePublic]


class AcmeOrderPublic(BaseModel):
    id: UUID
    account_id: UUID
    profile: str
    status: OrderStatus = Field(
        description="a processing order reads valid or invalid as soon as its certificate "
        "request is issued or refused"
    )
    identifiers: list[AcmeIdentifier]
    expires_at: datetime
    error: dict[str, Any] | None = Field(description="the ACME problem of an invalid order")
    request_id: UUID | None = Field(description="the certificate request finalize made")
    request_error: str | None = Field(
        default=None, description="why the certificate request failed, when it did"
    )
    certificate_id: UUID | None
    replaces: str | None = Field(description="ARI identifier of the certificate it replaces")
    created_at: datetime
    updated_at: datetime


class AcmeOrderDetail(AcmeOrderPublic):
    authorizations: list[AcmeAuthorizationPublic]
