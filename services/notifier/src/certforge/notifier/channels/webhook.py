"""Webhook: a CloudEvents 1.0 JSON body signed per the Standard Webhooks specification.

Headers `webhook-id` (the delivery's id, the same on every retry, so a receiver can drop
repeats), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
`id.timestamp.body` under the shared secret), signed with the `standardwebhooks` reference
library so any receiver can verify with its ready-made verifiers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from certforge.common.alerts import WebhookChannel
from certforge.common.contracts.envelope import CLOUDEVENTS_CONTENT_TYPE, SPEC_VERSION
from certforge.notifier.alert import Alert, summary
from certforge.notifier.channels.base import post_json

SOURCE = "/certforge/notifier"


def cloudevent(alert: Alert, now: datetime) -> dict[str, Any]:
    """The body: type `io.certforge.alert.<event>.v1` (`…alert.resolved.v1` for a resolve)."""
    kind = "resolved" if alert.action == "resolve" else alert.event.value
    return {
        "specversion": SPEC_VERSION,
        "id": alert.id,
        "source": SOURCE,
        "type": f"io.certforge.alert.{kind}.v1",
        "subject": str(alert.rule_id),
        "time": (alert.occurred_at or now).isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "alert_id": str(alert.rule_id),
            "alert": alert.rule,
            "event": alert.event.value,
            "application": alert.application,
            "action": alert.action,
            "digest": alert.digest,
            "summary": summary(alert, now),
            "items": [i.model_dump(mode="json") for i in alert.items],
        },
    }


class WebhookSender:
    def __init__(self, channel: WebhookChannel, client: httpx.AsyncClient) -> None:
        self._url = str(channel.url)
        self._signer = Webhook(channel.secret.get_secret_value())
        self._client = client

    async def send(self, alert: Alert, now: datetime) -> None:
        body = orjson.dumps(cloudevent(alert, now))
        headers = {
            "content-type": CLOUDEVENTS_CONTENT_TYPE,
            "webhook-id": alert.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(alert.id, now, body.decode()),
        }
        await post_json(self._client, self._url, body, headers, "the webhook")
