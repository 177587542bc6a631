"""`certforge-notifier`: delivers alerts (webhook, email, Slack, PagerDuty) when certificates
near expiry or change. Wires only: the event consumer, the expiry scan, the delivery loop and
the request handlers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from certforge.common.consumer import PullConsumer
from certforge.common.crypto.envelope import KeyRing
from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker, serve
from certforge.notifier.delivery import Deliveries
from certforge.notifier.handlers import register_handlers
from certforge.notifier.intake import Intake
from certforge.notifier.scan import ExpiryScanner
from certforge.notifier.settings import NotifierSettings


def build(settings: NotifierSettings) -> Worker:
    assert settings.leaf_keks is not None
    options = settings.notifier
    worker = Worker("notifier", settings)
    subjects = worker.subjects
    deliveries = Deliveries(
        worker.sessions,
        KeyRing.parse(settings.leaf_keks.get_secret_value()),
        options,
        subjects,
        after_commit=worker.wake_relay,
    )
    intake = Intake(
        worker.sessions,
        digest_wait=timedelta(seconds=options.digest_wait_seconds),
        after_commit=deliveries.wake,
    )
    scanner = ExpiryScanner(worker.sessions, options, after_commit=deliveries.wake)

    async def consume_events(stopping: asyncio.Event) -> None:
        await PullConsumer(
            worker.broker.connection.jetstream(),
            stream=subjects.events_stream,
            subject=subjects.event("*", ">"),
            durable=subjects.durable("notifier"),
            handler=intake.handle,
            batch_size=options.event_batch_size,
        ).run(stopping)

    register_handlers(worker, deliveries, options)
    worker.add_loop(consume_events)
    worker.add_loop(scanner.run)
    worker.add_loop(deliveries.run)
    return worker


def main() -> None:
    settings = NotifierSettings.load_or_exit("certforge-notifier")
    configure_logging("notifier", settings.log_level)
    serve(build(settings))
