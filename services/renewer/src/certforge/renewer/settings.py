"""Settings of the renewer (`CERTFORGE_…`; the scan's own under `CERTFORGE_RENEWER__…`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from certforge.common.durations import Duration
from certforge.common.settings import CommonSettings


class ScanSettings(BaseModel):
    interval: Duration = Field(
        default=timedelta(seconds=60), description="time between scans, e.g. 60s or 5m"
    )
    batch_size: int = Field(
        default=500, ge=1, le=10_000, description="certificates claimed per transaction"
    )
    expiry_thresholds: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=30), timedelta(days=7), timedelta(days=1)],
        description="certificate.expiring is announced once per certificate per threshold",
    )
    inventory_interval: Duration = Field(
        default=timedelta(seconds=60),
        description="time between measurements of the inventory gauges on /metrics "
        "(certificates by application, profile and status; earliest expiry; CA expiry)",
    )
    audit_seal_interval: Duration = Field(
        default=timedelta(seconds=2),
        description="time between passes that link new audit entries into the hash chain",
    )
    audit_sweep_interval: Duration = Field(
        default=timedelta(hours=1),
        description="time between passes that seal audit entries over the whole log (those "
        "committed far behind their neighbours) and drop idle rate-limit buckets",
    )


class RenewerSettings(CommonSettings):
    renewer: ScanSettings = ScanSettings()
