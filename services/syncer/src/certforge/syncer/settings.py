"""Settings of the syncer (`CERTFORGE_…`; its own under `CERTFORGE_SYNCER__…`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from certforge.common.settings import LeafKeySettings


class SyncSettings(BaseModel):
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="tries of a failing push before it is `failed`"
    )
    max_backoff_seconds: float = Field(
        default=300, gt=0, description="longest wait between two tries of one push"
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="tasks fetched at once; up to 4 times as many are carried out at once",
    )
    operation_timeout_seconds: float = Field(
        default=60, gt=0, description="a push that takes longer counts as a transient failure"
    )
    events_ack_wait_seconds: float = Field(
        default=30,
        ge=1,
        description="an event a syncer took and did not settle in this time (it died) goes to "
        "another replica; turning an event into sync tasks takes milliseconds",
    )


class SyncerSettings(LeafKeySettings):
    syncer: SyncSettings = SyncSettings()
