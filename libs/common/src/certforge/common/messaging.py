"""NATS connection and JetStream streams, declared idempotently at every service start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from certforge.common.backoff import backoff_delay
from certforge.common.contracts.subjects import Subjects
from certforge.common.settings import NatsSettings

log = logging.getLogger(__name__)

EVENTS_MAX_AGE_SECONDS = 7 * 86400
T = TypeVar("T")


def stream_configs(subjects: Subjects, settings: NatsSettings) -> list[StreamConfig]:
    """Commands: work queue (each message consumed once, then gone). Events: kept a week for
    any number of independent consumers."""

    def stream(name: str, subject: str, retention: RetentionPolicy, max_age: float) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=[subject],
            retention=retention,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=settings.stream_replicas,
            duplicate_window=float(settings.duplicate_window_seconds),
            max_age=max_age,
        )

    return [
        stream(subjects.commands_stream, subjects.commands_wildcard, RetentionPolicy.WORK_QUEUE, 0),
        stream(subjects.sync_stream, subjects.sync_wildcard, RetentionPolicy.WORK_QUEUE, 0),
        stream(
            subjects.validation_stream,
            subjects.validation_wildcard,
            RetentionPolicy.WORK_QUEUE,
            0,
        ),
        stream(
            subjects.events_stream,
            subjects.events_wildcard,
            RetentionPolicy.LIMITS,
            float(EVENTS_MAX_AGE_SECONDS),
        ),
    ]


async def ensure_streams(js: JetStreamContext, subjects: Subjects, settings: NatsSettings) -> None:
    """Create the streams, or update them to the configuration of this version."""
    for config in stream_configs(subjects, settings):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", config.name)
        else:
            await js.update_stream(config)


async def delete_streams(js: JetStreamContext, subjects: Subjects, settings: NatsSettings) -> None:
    """Remove a namespace's streams (test sessions and benchmarks clean up after themselves)."""
    for config in stream_configs(subjects, settings):
        assert config.name is not None
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(config.name)


async def when_reachable(
    attempt: Callable[[], Awaitable[T]], log: logging.Logger, what: str = "NATS"
) -> T:
    """`attempt()`, tried again with a growing pause (0.5 s to 5 s) while it fails: a service
    started while NATS restarts, is paused or elects a stream leader comes up when NATS is back,
    instead of exiting for its supervisor to notice (the fault suite caught a syncer started
    while NATS was paused exiting so). Each attempt must be safe to repeat."""
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:  # nats-py raises many kinds; any failure here means "not yet"
            failures += 1
            delay = backoff_delay(failures, base=0.5, cap=5.0)
            log.warning("%s not ready (%s); retrying in %.1f s", what, _reason(exc), delay)
            await asyncio.sleep(delay)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def server_list(url: str) -> list[str]:
    """`CERTFORGE_NATS_URL` may name several servers of a cluster, comma-separated."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def connect(url: str, *, name: str) -> NatsClient:
    """A nats-py client that reconnects for ever: a NATS outage delays work, it loses none."""
    client = NatsClient()
    await client.connect(
        servers=server_list(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
    )
    return client
