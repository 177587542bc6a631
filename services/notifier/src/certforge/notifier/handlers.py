"""NATS request handlers of the notifier. Thin: decode, act, answer; they always answer, so the
api never waits for a timeout because of bad input or a channel that hangs."""

from __future__ import annotations

import logging
from typing import Any

from certforge.common.contracts.rpc import (
    ALERT_TEST,
    NOTIFIER_CHANNELS,
    AlertTestReply,
    NotifierChannelsReply,
    TestAlert,
)
from certforge.common.runtime import Worker
from certforge.notifier.delivery import Deliveries
from certforge.notifier.settings import NotifierOptions

log = logging.getLogger(__name__)

QUEUE = "certforge-notifier"


def channel_types(options: NotifierOptions) -> list[str]:
    """What this notifier can deliver: email only with an SMTP server configured."""
    types = ["webhook", "slack", "pagerduty"]
    if options.smtp.host:
        types.append("email")
    return types


def register_handlers(worker: Worker, deliveries: Deliveries, options: NotifierOptions) -> None:
    subjects = worker.subjects

    @worker.broker.subscriber(subjects.rpc(ALERT_TEST), queue=QUEUE, title="alert.test")
    async def on_test(body: dict[str, Any]) -> AlertTestReply:
        """Send a sample alert through every channel of a rule."""
        try:
            request = TestAlert.model_validate(body)
        except ValueError:
            return AlertTestReply(ok=False, detail="bad request")
        try:
            return await deliveries.test(request.alert_id)
        except Exception:
            log.exception("testing alert %s failed", request.alert_id)
            return AlertTestReply(ok=False, detail="internal error in the notifier")

    @worker.broker.subscriber(subjects.rpc(NOTIFIER_CHANNELS), queue=QUEUE, title="alert.channels")
    async def on_channels(body: dict[str, Any]) -> NotifierChannelsReply:
        """Which channel types this notifier can deliver."""
        return NotifierChannelsReply(types=channel_types(options))
