from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from certforge.api.schemas.common import Name, Strict, examples
from certforge.common.destinations.options import SyncOptions, SyncSelector


class SyncCreate(Strict):
    model_config = examples(
        {
            "name": "local-files",
            "kind": "directory",
            "settings": {"path": "/var/lib/certforge/certs"},
            "options": {"name_template": "{common_name}-{certificate_id}"},
        }
    )

    name: Name
    kind: str = Field(
        description="aws-acm, aws-secrets-manager, vault-kv, kubernetes-tls, azure-keyvault, "
        "directory or webhook"
    )
    settings: dict[str, Any] = Field(default_factory=dict, description="per kind; validated")
    credentials: dict[str, Any] | None = Field(
        default=None, description="per kind; write-only: stored encrypted, never returned"
    )
    selector: SyncSelector = SyncSelector()
    options: SyncOptions = SyncOptions()
    enabled: bool = True


class SyncUpdate(Strict):
    model_config = examples({"enabled": False})

    name: Name | None = None
    settings: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = Field(
        default=None, description="replaces the stored credentials whole"
    )
    selector: SyncSelector | None = None
    options: SyncOptions | None = None
    enabled: bool | None = None


class SyncPublic(BaseModel):
    id: UUID
    application: str
    name: str
    kind: str
    settings: dict[str, Any]
    has_credentials: bool
    selector: SyncSelector
    options: SyncOptions
    enabled: bool
    created_at: datetime
    updated_at: datetime


class SyncStatePublic(BaseModel):
    certificate_id: UUID
    lineage_id: UUID
    status: str = Field(description="pending, succeeded, failed, skipped or removed")
    action: str
    external_id: str | None
    attempts: int
    last_error: str | None
    last_synced_at: datetime | None
    updated_at: datetime


class SyncRunResult(BaseModel):
    queued: int = Field(description="certificates queued for a push")


class SyncTestResult(BaseModel):
    ok: bool
    detail: str
