from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.acme import AcmeEnrollment, AcmeEnrollmentPublic
from certforge.api.schemas.common import Description, Name, Slug, Strict, examples
from certforge.common.domain import Role


class ApplicationCreate(Strict):
    model_config = examples(
        {"slug": "shop", "name": "Shop", "description": "the web shop's services"}
    )

    slug: Slug
    name: Name
    description: Description = ""


class ApplicationUpdate(Strict):
    model_config = examples({"name": "Web shop"})

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
    model_config = examples({"role": "operator"})

    role: Role


class MemberPublic(BaseModel):
    identity_id: UUID
    name: str
    role: Role
    created_at: datetime


class ApiEnrollment(Strict):
    model_config = examples({"enabled": True, "auto_renew": True, "renew_before_days": 30})

    enabled: bool = Field(description="whether operators may request certificates through the API")
    auto_renew: bool = Field(default=True, description="default auto-renew of issued certificates")
    renew_before_days: int = Field(
        default=30, ge=1, le=3650, description="renew this many days before expiry"
    )


class AttachmentPut(Strict):
    """Optional body of attaching a profile: enrollment settings to apply in the same call."""

    model_config = examples(
        {"api": {"enabled": True}},
        {"acme": {"enabled": True, "eab_required": True}},
    )
    api: ApiEnrollment | None = Field(
        default=None,
        description="API enrollment on this profile; omitted: a new attachment has it off and "
        "an existing one keeps its settings",
    )
    acme: AcmeEnrollment | None = Field(
        default=None,
        description="ACME enrollment on this profile; omitted: a new attachment has it off and "
        "an existing one keeps its settings",
    )


class AttachmentPublic(BaseModel):
    application_id: UUID
    profile_id: UUID
    profile: str = Field(description="profile slug")
    api: ApiEnrollment
    acme: AcmeEnrollmentPublic
    acme_enabled: bool = Field(description="the same as `acme.enabled` (kept for compatibility)")
    created_at: datetime
    updated_at: datetime
