from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.common import Name, Strict, examples
from certforge.common.domain import Role
from certforge.common.durations import Duration


class IdentityCreate(Strict):
    model_config = examples({"name": "ci-bot", "token_ttl": "90d"})

    name: Name
    product_admin: bool = Field(default=False, description="grant the global product-admin role")
    token_ttl: Duration | None = Field(default=None, description="token expiry, e.g. 90d; none")


class TokenCreate(Strict):
    model_config = examples({"ttl": "90d"})

    ttl: Duration | None = Field(default=None, description="token expiry, e.g. 90d; none = never")


class TokenPublic(BaseModel):
    id: UUID
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewToken(BaseModel):
    id: UUID
    token: str = Field(description="shown once; only its SHA-256 is stored")
    expires_at: datetime | None


class MembershipPublic(BaseModel):
    application_id: UUID
    application: str
    role: Role


class IdentityPublic(BaseModel):
    id: UUID
    name: str
    product_admin: bool
    created_at: datetime
    disabled_at: datetime | None


class IdentityCreated(IdentityPublic):
    token: str = Field(description="shown once; only its SHA-256 is stored")
    token_id: UUID


class IdentityDetail(IdentityPublic):
    tokens: list[TokenPublic]
    memberships: list[MembershipPublic]
