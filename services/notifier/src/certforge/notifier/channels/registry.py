"""A channel's sender from its stored settings and its opened secrets."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from certforge.common.alerts import (
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    parse_channel,
)
from certforge.notifier.channels.base import PermanentChannelError, Sender
from certforge.notifier.channels.email import EmailSender
from certforge.notifier.channels.pagerduty import PagerDutySender
from certforge.notifier.channels.slack import SlackSender
from certforge.notifier.channels.webhook import WebhookSender
from certforge.notifier.settings import NotifierOptions


def build_sender(
    stored: dict[str, Any],
    secrets: dict[str, str],
    options: NotifierOptions,
    client: httpx.AsyncClient,
) -> Sender:
    """Stored settings + secrets, validated by the same model the api used; a configuration
    that no longer validates (a model tightened since) fails its deliveries permanently."""
    fields = {k: v for k, v in stored.items() if k != "id"}
    try:
        channel = parse_channel({**fields, **secrets})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise PermanentChannelError(f"invalid channel configuration: {problems}") from exc
    if isinstance(channel, WebhookChannel):
        return WebhookSender(channel, client)
    if isinstance(channel, SlackChannel):
        return SlackSender(channel, client)
    if isinstance(channel, PagerDutyChannel):
        return PagerDutySender(channel, str(options.pagerduty_url), client)
    assert isinstance(channel, EmailChannel)
    return EmailSender(channel, options.smtp)
