from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.common import Description, Slug, Strict
from certforge.common.domain import (
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    SignatureHash,
    SubjectFields,
)
from certforge.common.durations import Duration


class ProfileDefaults(Strict):
    """What a request gets for each field it leaves out."""

    ttl: Duration = Field(default=timedelta(days=30), description="validity, e.g. 30d")
    subject: SubjectFields = SubjectFields()
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
    signature_algorithm: SignatureHash | None = Field(
        default=None, description="hash of the signature; none = the CA key's natural one"
    )
    key_usages: list[KeyUsage] = Field(default_factory=lambda: [KeyUsage.DIGITAL_SIGNATURE])
    extended_key_usages: list[ExtendedKeyUsage] = Field(
        default_factory=lambda: [ExtendedKeyUsage.SERVER_AUTH]
    )


class ProfileCreate(Strict):
    slug: Slug
    name: str = Field(default="", max_length=128)
    description: Description = ""
    ca_id: UUID
    policy_id: UUID
    defaults: ProfileDefaults = ProfileDefaults()


class ProfileUpdate(Strict):
    name: str | None = Field(default=None, max_length=128)
    description: Description | None = None
    ca_id: UUID | None = None
    policy_id: UUID | None = None
    defaults: ProfileDefaults | None = None


class ProfilePublic(BaseModel):
    id: UUID
    slug: str
    name: str
    description: str
    ca_id: UUID
    policy_id: UUID
    defaults: ProfileDefaults
    created_at: datetime
    updated_at: datetime
