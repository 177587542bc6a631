from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.common import Description, Slug, Strict
from certforge.common.issuance import ProfileDefaults


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
