"""Settings of the notifier (`CERTFORGE_…`; its own under `CERTFORGE_NOTIFIER__…`).

The SMTP server and its password live here only: the api never sends mail, it asks the notifier
which channel types it can deliver (`rpc.alert.channels`) before accepting an email channel.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, SecretStr

from certforge.common.durations import Duration
from certforge.common.settings import LeafKeySettings


class SmtpSettings(BaseModel):
    host: str | None = Field(
        default=None,
        description="SMTP server for email channels; email channels are refused while unset",
    )
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587, 465, 25)")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="How the SMTP session is secured: `starttls` (upgrade after connecting, "
        "port 587), `tls` (implicit TLS, port 465) or `none` (a relay on a trusted network "
        "only)",
    )
    username: str | None = Field(default=None, description="SMTP login, when the server wants one")
    password: SecretStr | None = Field(
        default=None,
        description="SMTP password; in Kubernetes, the file `certforge_notifier` of the "
        'secrets directory (`{"smtp": {"password": "…"}}`)',
    )
    sender: str = Field(
        default="certforge@localhost", description="the From address of alert emails"
    )
    ca_file: str | None = Field(
        default=None,
        description="PEM file of CAs trusted for the SMTP server's certificate "
        "(the system's when unset)",
    )
    timeout_seconds: float = Field(default=15, gt=0, le=300, description="per SMTP session")


class NotifierOptions(BaseModel):
    smtp: SmtpSettings = SmtpSettings()
    pagerduty_url: HttpUrl = Field(
        default=HttpUrl("https://events.pagerduty.com"),
        description="base URL of the PagerDuty Events API v2 (`/v2/enqueue` is appended)",
    )
    timeout_seconds: float = Field(
        default=10, gt=0, le=120, description="an HTTP delivery slower than this is a failure"
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="tries of a delivery before it is `failed`"
    )
    max_backoff_seconds: float = Field(
        default=600, gt=0, description="longest wait between two tries of one delivery"
    )
    scan_interval: Duration = Field(
        default=timedelta(seconds=60),
        description="time between expiry scans (expiring, ca_expiring), e.g. 60s or 5m",
    )
    scan_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="certificates read per rule and query"
    )
    poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="how often due deliveries are looked for"
    )
    delivery_batch_size: int = Field(
        default=64, ge=1, le=1000, description="deliveries leased and sent at once"
    )
    digest_wait_seconds: float = Field(
        default=60,
        ge=0,
        description="a digest rule's event alerts wait this long, so one message lists them all",
    )
    event_batch_size: int = Field(default=64, ge=1, le=1000, description="events fetched at once")


class NotifierSettings(LeafKeySettings):
    """The leaf key ring opens the channels' secrets, sealed by the api under it."""

    notifier: NotifierOptions = NotifierOptions()
