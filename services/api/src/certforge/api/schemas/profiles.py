from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.common import Description, OptionalName, Slug, Strict, examples
from certforge.common.issuance import ProfileDefaults
from certforge.common.profile_extensions import ProfileExtensions


class ProfileCreate(Strict):
    model_config = examples(
        {
            "slug": "web-server",
            "ca_id": "0b6f7d2e-5c3a-4f0e-9d1b-2a8c4e6f1a3b",
            "policy_id": "5e2d9c1a-7b4f-4e8a-a6c3-1f0d2b9e8c7a",
            "defaults": {
                "ttl": "30d",
                "key_algorithm": "EC_P256",
                "key_usages": ["digital_signature"],
                "extended_key_usages": ["server_auth"],
            },
        },
        {
            "slug": "shop-web",
            "ca_id": "0b6f7d2e-5c3a-4f0e-9d1b-2a8c4e6f1a3b",
            "policy_id": "5e2d9c1a-7b4f-4e8a-a6c3-1f0d2b9e8c7a",
            "extensions": {
                "certificate_policies": [
                    {"oid": "1.3.6.1.4.1.55555.1.1", "cps_uri": "https://pki.example.com/cps"}
                ],
                "must_staple": True,
                "custom": [{"oid": "1.3.6.1.4.1.55555.2.1", "value": {"utf8_string": "shop"}}],
            },
        },
    )

    slug: Slug
    name: OptionalName = ""
    description: Description = ""
    ca_id: UUID
    policy_id: UUID
    defaults: ProfileDefaults = ProfileDefaults()
    extensions: ProfileExtensions = ProfileExtensions()


class ProfileUpdate(Strict):
    model_config = examples({"defaults": {"ttl": "14d"}})

    name: OptionalName | None = None
    description: Description | None = None
    ca_id: UUID | None = None
    policy_id: UUID | None = None
    defaults: ProfileDefaults | None = None
    extensions: ProfileExtensions | None = Field(
        default=None, description="replaces the profile's extensions as a whole"
    )


class ProfilePublic(BaseModel):
    id: UUID
    slug: str
    name: str
    description: str
    ca_id: UUID
    policy_id: UUID
    defaults: ProfileDefaults
    extensions: ProfileExtensions
    created_at: datetime
    updated_at: datetime
