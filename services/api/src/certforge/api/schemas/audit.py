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
