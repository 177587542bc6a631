"""`certforge-syncer`: pushes certificates to external stores when they change."""

from __future__ import annotations

import asyncio

from certforge.common.consumer import PullConsumer
from certforge.common.crypto.envelope import KeyRing
from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker, serve
from certforge.syncer.fanout import FanOut
from certforge.syncer.handlers import register_test_handler
from certforge.syncer.plugins.kubernetes_tls import KubernetesTlsSecret
from certforge.syncer.settings import SyncerSettings
from certforge.syncer.tasks import SyncTasks


def build(settings: SyncerSettings) -> Worker:
    assert settings.leaf_keks is not None
    worker = Worker("syncer", settings)
    subjects = worker.subjects
    fanout = FanOut(worker.sessions, subjects, worker.wake_relay)
    tasks = SyncTasks(
        worker.sessions,
        KeyRing.parse(settings.leaf_keks.get_secret_value()),
        subjects,
        settings.syncer,
        development=settings.is_development,
        after_commit=worker.wake_relay,
    )

    async def consume_events(stopping: asyncio.Event) -> None:
        await PullConsumer(
            worker.broker.connection.jetstream(),
            stream=subjects.events_stream,
            subject=subjects.event("*", "certificate.*"),
            durable=subjects.durable("syncer_events"),
            handler=fanout.handle,
            batch_size=settings.syncer.batch_size,
            ack_wait_seconds=settings.syncer.events_ack_wait_seconds,
        ).run(stopping)

    async def consume_tasks(stopping: asyncio.Event) -> None:
        await PullConsumer(
            worker.broker.connection.jetstream(),
            stream=subjects.sync_stream,
            subject=subjects.sync_task,
            durable=subjects.durable("syncer"),
            handler=tasks.handle,
            batch_size=settings.syncer.batch_size,
            ack_wait_seconds=settings.syncer.operation_timeout_seconds * 2,
            # One by one, settled as each ends: a destination hanging until the timeout holds
            # its own tasks only, not a whole batch of other destinations' tasks.
            max_in_flight=settings.syncer.batch_size * 4,
        ).run(stopping)

    register_test_handler(worker, tasks, settings.syncer.operation_timeout_seconds)

    async def consume_tasks_warm(stopping: asyncio.Event) -> None:
        # The Kubernetes client's first call costs seconds of CPU holding the GIL: pay it on a
        # thread before taking tasks, not in the event loop in the middle of a batch.
        await asyncio.to_thread(KubernetesTlsSecret.warm_up)
        try:
            await consume_tasks(stopping)
        finally:  # every task has been settled: nothing uses the destinations any more
            await tasks.close()

    worker.add_loop(consume_events)
    worker.add_loop(consume_tasks_warm)
    return worker


def main() -> None:
    settings = SyncerSettings.load_or_exit("certforge-syncer")
    configure_logging("syncer", settings.log_level)
    serve(build(settings))
