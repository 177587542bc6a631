from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from certforge.api.schemas.common import Description, OptionalName, Slug, Strict, examples
from certforge.common.issuance import ProfileDefaults


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
        }
    )

    slug: Slug
    name: OptionalName = ""
    description: Description = ""
    ca_id: UUID
    policy_id: UUID
    defaults: ProfileDefaults = ProfileDefaults()


class ProfileUpdate(Strict):
    model_config = examples({"defaults": {"ttl": "14d"}})

    name: OptionalName | None = None
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
