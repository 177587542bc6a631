"""A stored rule as the notifier uses it: typed fields, its channels' secrets opened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from certforge.common.alerts import AlertEvent, AlertFilters, secrets_aad
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.tables import AlertRule


@dataclass(frozen=True)
class Rule:
    id: UUID
    application_id: UUID
    name: str
    event: AlertEvent
    before: timedelta | None
    filters: AlertFilters
    channels: list[dict[str, Any]]
    enabled: bool
    digest: bool
    sealed: bytes | None
    created_at: datetime

    @classmethod
    def of(cls, row: AlertRule) -> Rule:
        return cls(
            id=row.id,
            application_id=row.application_id,
            name=row.name,
            event=AlertEvent(row.event),
            before=timedelta(seconds=row.before_seconds) if row.before_seconds else None,
            filters=AlertFilters.model_validate(row.filters),
            channels=list(row.channels),
            enabled=row.enabled,
            digest=row.digest,
            sealed=row.encrypted_secrets,
            created_at=row.created_at,
        )

    def channel(self, channel_id: UUID) -> dict[str, Any] | None:
        return next((c for c in self.channels if c.get("id") == str(channel_id)), None)

    def secrets(self, keys: KeyRing) -> dict[str, dict[str, str]]:
        """Secrets per channel id; opened only when something is about to be sent."""
        if self.sealed is None:
            return {}
        opened: dict[str, dict[str, str]] = orjson.loads(
            keys.decrypt(self.sealed, secrets_aad(self.id))
        )
        return opened
