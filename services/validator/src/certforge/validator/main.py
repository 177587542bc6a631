"""`certforge-validator`: checks ACME challenges on the requesters' machines (http-01, dns-01,
tls-alpn-01) and records the verdicts. The one Certforge service with egress to the outside."""

from __future__ import annotations

import asyncio
import logging

from certforge.common.consumer import PullConsumer
from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker, serve
from certforge.validator.context import Network
from certforge.validator.handler import Validations
from certforge.validator.settings import ValidatorSettings

log = logging.getLogger(__name__)


def build(settings: ValidatorSettings) -> Worker:
    worker = Worker("validator", settings)
    subjects = worker.subjects
    options = settings.validator
    if options.allow_private_targets and not settings.is_development:
        log.warning(
            "CERTFORGE_VALIDATOR__ALLOW_PRIVATE_TARGETS is on outside development: ACME clients "
            "can make this validator connect to internal addresses"
        )
    validations = Validations(
        worker.sessions, subjects, Network.of(options), after_commit=worker.wake_relay
    )

    async def consume(stopping: asyncio.Event) -> None:
        await PullConsumer(
            worker.broker.connection.jetstream(),
            stream=subjects.validation_stream,
            subject=subjects.validate_challenge,
            durable=subjects.durable("validator"),
            handler=validations.handle,
            batch_size=min(options.concurrency, 32),
            # Longer than the slowest validation, or JetStream redelivers it mid-check.
            ack_wait_seconds=options.worst_case_seconds + 30,
            # One by one: a requester whose machine hangs holds one slot, not a batch.
            max_in_flight=options.concurrency,
        ).run(stopping)

    worker.add_loop(consume)
    return worker


def main() -> None:
    settings = ValidatorSettings.load_or_exit("certforge-validator")
    configure_logging("validator", settings.log_level)
    serve(build(settings))
