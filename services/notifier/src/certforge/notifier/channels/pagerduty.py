"""PagerDuty Events API v2: `trigger` an incident per alert, `resolve` it when the certificate
is renewed or revoked. Both carry the same `dedup_key` (stored with the delivery), so PagerDuty
folds a repeated trigger into one incident and the resolve closes exactly that one.

A digest rule still triggers one incident per certificate: an incident is resolved per
certificate, as each is renewed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson

from certforge.common.alerts import PagerDutyChannel
from certforge.notifier.alert import Alert, summary
from certforge.notifier.channels.base import post_json


def event(alert: Alert, routing_key: str, severity: str, now: datetime) -> dict[str, Any]:
    assert alert.dedup_key is not None
    if alert.action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.dedup_key}
    item = alert.items[0]
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "payload": {
            "summary": summary(alert, now)[:1024],
            "source": f"certforge/{alert.application}",
            "severity": severity,
            "timestamp": (alert.occurred_at or now).isoformat(),
            "component": item.name,
            "group": alert.application,
            "class": alert.event.value,
            "custom_details": {
                "alert": alert.rule,
                "items": [i.model_dump(mode="json") for i in alert.items],
            },
        },
    }


class PagerDutySender:
    def __init__(self, channel: PagerDutyChannel, base_url: str, client: httpx.AsyncClient) -> None:
        self._url = base_url.rstrip("/") + "/v2/enqueue"
        self._routing_key = channel.routing_key.get_secret_value()
        self._severity = channel.severity
        self._client = client

    async def send(self, alert: Alert, now: datetime) -> None:
        body = orjson.dumps(event(alert, self._routing_key, self._severity, now))
        await post_json(
            self._client, self._url, body, {"content-type": "application/json"}, "PagerDuty"
        )
