from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.common import Description, Name, Slug, Strict
from certforge.common.domain import Role


class ApplicationCreate(Strict):
    slug: Slug
    name: Name
    description: Description = ""


class ApplicationUpdate(Strict):
    name: Name | None = None
    description: Description | None = None


class ApplicationPublic(BaseModel):
    id: UUID
    slug: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class MemberPut(Strict):
    role: Role


class MemberPublic(BaseModel):
    identity_id: UUID
    name: str
    role: Role
    created_at: datetime


class ApiEnrollment(Strict):
    enabled: bool = Field(description="whether operators may request certificates through the API")
    auto_renew: bool = Field(default=True, description="default auto-renew of issued certificates")
    renew_before_days: int = Field(
        default=30, ge=1, le=3650, description="renew this many days before expiry"
    )


class AttachmentPut(Strict):
    """Optional body of attaching a profile: enrollment settings to apply in the same call."""

    api: ApiEnrollment | None = Field(
        default=None,
        description="API enrollment on this profile; omitted: a new attachment has it off and "
        "an existing one keeps its settings",
    )


class AttachmentPublic(BaseModel):
    application_id: UUID
    profile_id: UUID
    profile: str = Field(description="profile slug")
    api: ApiEnrollment
    acme_enabled: bool
    created_at: datetime
    updated_at: datetime
