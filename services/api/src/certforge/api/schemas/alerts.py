"""Alert rules of an application and their deliveries.

Channels are read as plain objects and validated in the domain (`common.alerts.parse_channels`)
so that an error names `channels.0.url`, not the union member (`channels.0.webhook.url`); the
OpenAPI document still shows each channel's schema. Secrets are write-only: a channel is
returned with `{"configured": true}` in place of each secret field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, WithJsonSchema

from certforge.api.schemas.common import Name, Strict, examples
from certforge.common.alerts import CHANNEL_SCHEMA, MAX_CHANNELS, AlertEvent, AlertFilters
from certforge.common.durations import Duration

ChannelBodies = Annotated[
    list[dict[str, Any]],
    WithJsonSchema(
        {
            "type": "array",
            "items": CHANNEL_SCHEMA,
            "minItems": 1,
            "maxItems": MAX_CHANNELS,
        }
    ),
    Field(
        min_length=1,
        max_length=MAX_CHANNELS,
        description="1 to 10 channels: webhook, email, slack or pagerduty. In a PATCH the list "
        "replaces the old one; a channel given with the `id` of an existing one keeps its "
        "stored settings and secrets, except the fields sent.",
    ),
]

_SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


class AlertCreate(Strict):
    model_config = examples(
        {
            "name": "expiring-in-7-days",
            "event": "expiring",
            "before": "7d",
            "channels": [
                {"type": "slack", "url": _SLACK},
                {"type": "email", "to": ["oncall@example.com"]},
            ],
        },
        {
            "name": "renewal-failures",
            "event": "renewal_failed",
            "filters": {"profiles": ["web-server"], "name": "*.shop.example.com"},
            "channels": [
                {
                    "type": "webhook",
                    "url": "https://hooks.example.com/certforge",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                },
                {"type": "pagerduty", "routing_key": "R0UT1NGKEY0000000000000000000000"},
            ],
        },
    )

    name: Name
    event: AlertEvent = Field(
        description="expiring, issued, renewed, revoked, renewal_failed, sync_failed, "
        "request_failed or ca_expiring"
    )
    before: Duration | None = Field(
        default=None,
        description="expiring and ca_expiring only: alert once a certificate (CA) is this close "
        "to its expiry, e.g. 30d or 7d",
    )
    filters: AlertFilters = AlertFilters()
    channels: ChannelBodies
    enabled: bool = True
    digest: bool = Field(
        default=False,
        description="one message listing every matching certificate per window, instead of "
        "one per certificate (PagerDuty still gets one incident per certificate)",
    )


class AlertUpdate(Strict):
    model_config = examples({"enabled": False}, {"before": "14d", "digest": True})

    name: Name | None = None
    event: AlertEvent | None = None
    before: Duration | None = None
    filters: AlertFilters | None = None
    channels: ChannelBodies | None = None
    enabled: bool | None = None
    digest: bool | None = None


class AlertPublic(BaseModel):
    id: UUID
    application: str
    name: str
    event: AlertEvent
    before: Duration | None
    filters: AlertFilters
    channels: list[dict[str, Any]] = Field(
        description='each with its `id` and `type`; secrets appear as `{"configured": true}`'
    )
    enabled: bool
    digest: bool
    created_at: datetime
    updated_at: datetime


class AlertDeliveryPublic(BaseModel):
    id: UUID
    subject_kind: str = Field(description="certificate, ca or request")
    subject_id: UUID
    window: str = Field(description="what makes a repeat the same alert: expiring:604800, …")
    channel_id: UUID
    channel_type: str
    action: str = Field(description="trigger, or resolve (PagerDuty)")
    status: str = Field(description="pending, delivered, failed or skipped")
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="when pending: the next try")
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AlertTestResult(BaseModel):
    ok: bool
    detail: str
    channels: list[dict[str, Any]] = Field(
        description="per channel: `channel_id`, `type`, `ok` and `detail`"
    )
