from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel


class AuditEventPublic(BaseModel):
    id: int
    occurred_at: datetime
    actor_id: UUID | None
    actor_name: str
    action: str
    resource_type: str
    resource_id: str | None
    application_id: UUID | None
    outcome: str
    status_code: int | None
    details: dict[str, Any]
    request_id: str | None


class ChainHead(BaseModel):
    seq: int
    hash: str
    """SHA-256 of the newest sealed entry, hex: record it elsewhere to detect a cut-off tail."""


class ChainBreak(BaseModel):
    event_id: int
    seq: int
    reason: str


class AuditChainVerification(BaseModel):
    """The hash chain recomputed over the sealed entries (of one application, or all)."""

    verified: int
    """Sealed entries whose links hold, up to the first broken one."""
    broken: ChainBreak | None
    """The first link that does not hold; null when the whole chain holds."""
    head: ChainHead | None
    unsealed: int
    """Entries older than a minute that no link seals yet (the renewer seals every 2 s)."""
