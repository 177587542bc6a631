"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): `text` for
notifications and clients without blocks, `blocks` for the message itself.

Slack allows 50 blocks per message: a digest lists its first 45 items and says how many more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson

from certforge.common.alerts import SlackChannel
from certforge.notifier.alert import Alert, line, summary
from certforge.notifier.channels.base import post_json

MAX_ITEMS = 45


def message(alert: Alert, now: datetime) -> dict[str, Any]:
    title = summary(alert, now)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    for item in alert.items[:MAX_ITEMS]:
        text = line(alert, item, now)
        if item.profile:
            text += f"\nprofile `{item.profile}`"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    more = len(alert.items) - MAX_ITEMS
    context = f"alert *{alert.rule}* ({alert.event.value}) · application *{alert.application}*"
    if more > 0:
        context = f"and {more} more · " + context
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": title, "blocks": blocks}


class SlackSender:
    def __init__(self, channel: SlackChannel, client: httpx.AsyncClient) -> None:
        self._url = str(channel.url)
        self._client = client

    async def send(self, alert: Alert, now: datetime) -> None:
        body = orjson.dumps(message(alert, now))
        await post_json(
            self._client, self._url, body, {"content-type": "application/json"}, "Slack"
        )
