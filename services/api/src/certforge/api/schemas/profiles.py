from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from certforge.api.schemas.common import Description, OptionalName, Slug, Strict
from certforge.common.issuance import ProfileDefaults


class ProfileCreate(Strict):
    slug: Slug
    name: OptionalName = ""
    description: Description = ""
    ca_id: UUID
    policy_id: UUID
    defaults: ProfileDefaults = ProfileDefaults()


class ProfileUpdate(Strict):
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
