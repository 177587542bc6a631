"""NATS connection and JetStream streams, declared idempotently at every service start."""

from __future__ import annotations

import contextlib
import logging

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from certforge.common.contracts.subjects import Subjects
from certforge.common.settings import NatsSettings

log = logging.getLogger(__name__)

EVENTS_MAX_AGE_SECONDS = 7 * 86400


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
