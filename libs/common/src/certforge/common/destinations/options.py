"""How a sync chooses certificates and names their objects: pure, used by the api (to validate
and select) and by the syncer (to name objects).

The name template's `{certificate_id}` is the lineage id (the first certificate of a renewal
chain), so a renewed certificate keeps its object's name and replaces it in place; a template
without it could map two certificates to one object, so it is refused.
"""

from __future__ import annotations

import re
import string
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

PLACEHOLDERS = frozenset({"certificate_id", "common_name", "profile", "application"})
UNIQUE_PLACEHOLDER = "certificate_id"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class SyncSelector(BaseModel):
    """Which of the application's certificates the sync receives (all conditions must hold)."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[UUID] | None = Field(
        default=None, description="only certificates of these profiles (ids); none = all"
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="only certificates whose metadata has these tags"
    )

    def matches(self, profile_id: UUID, metadata: dict[str, Any]) -> bool:
        if self.profiles is not None and profile_id not in self.profiles:
            return False
        return all(metadata.get(k) == v for k, v in self.tags.items())


class SyncOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_chain: bool = Field(default=True, description="send the issuing CA chain")
    include_root: bool = Field(default=False, description="and the root CA with it")
    include_trust_bundle: bool = Field(
        default=False,
        description="also send the issuing CA's trust bundle (GET /cas/{id}/bundle: during a "
        "rollover or cross-signing, the old and the new roots), pushed again whenever it "
        "changes; where it goes depends on the destination kind",
    )
    remove_on_revoke: bool = Field(default=True, description="delete the object on revocation")
    remove_on_expiry: bool = Field(default=False, description="delete it once expired")
    name_template: str = Field(
        default="{application}-{certificate_id}",
        max_length=200,
        description="object name; placeholders {certificate_id} (required: stable across "
        "renewals), {common_name}, {profile}, {application}",
    )

    @field_validator("name_template")
    @classmethod
    def _check_template(cls, template: str) -> str:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as exc:
            raise ValueError(f"invalid name template: {exc}") from exc
        unknown = fields - PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {sorted(unknown)}; use {sorted(PLACEHOLDERS)}"
            )
        if UNIQUE_PLACEHOLDER not in fields:
            raise ValueError(
                "the name template needs {certificate_id}, the one placeholder unique to a "
                "certificate (and stable across its renewals)"
            )
        return template


def render_name(
    template: str, *, lineage_id: UUID, common_name: str | None, profile: str, application: str
) -> str:
    """The object name; `{common_name}` is made filename-safe (`*.x.com` → `_.x.com`)."""
    safe_cn = _UNSAFE.sub("_", (common_name or "").replace("*", "_")) or "unnamed"
    return template.format(
        certificate_id=lineage_id, common_name=safe_cn, profile=profile, application=application
    )
