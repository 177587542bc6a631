from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from certforge.api.schemas.common import Description, Name, examples
from certforge.common.policy import PolicyDocument


class PolicyCreate(PolicyDocument):
    """A policy document plus its name; the rule fields sit at the top level."""

    model_config = examples(
        {
            "name": "web",
            "sans": {"dns": {"allowed": ["*.example.com", "example.com"]}},
            "key_algorithms": ["EC_P256", "RSA_2048"],
            "extended_key_usages": {"allowed": ["server_auth"]},
            "max_validity": "90d",
        },
        extra="forbid",
    )

    name: Name
    description: Description = ""

    def document(self) -> PolicyDocument:
        return PolicyDocument.model_validate(self.model_dump(exclude={"name", "description"}))


class PolicyUpdate(BaseModel):
    """Fields to change; rule fields replace the stored ones whole."""

    model_config = examples({"max_validity": "30d"}, extra="forbid")

    name: Name | None = None
    description: Description | None = None
    subject: dict[str, object] | None = None
    sans: dict[str, object] | None = None
    key_algorithms: list[str] | None = None
    signature_hashes: list[str] | None = None
    key_usages: dict[str, object] | None = None
    extended_key_usages: dict[str, object] | None = None
    max_validity: str | None = None
    allow_ca: bool | None = None


class PolicyPublic(PolicyDocument):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
