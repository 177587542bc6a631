"""`certforge-issuer`: wires settings, key rings and handlers into a worker, then runs it."""

from __future__ import annotations

import asyncio

from certforge.common.crypto.envelope import KeyRing
from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.cas import CAService
from certforge.issuer.consumer import CommandConsumer, ConsumerSettings
from certforge.issuer.handlers import issue_handler, register_ca_handlers
from certforge.issuer.issuing import IssuanceService
from certforge.issuer.settings import IssuerSettings


def build(settings: IssuerSettings) -> Worker:
    assert settings.ca_keks is not None
    assert settings.leaf_keks is not None
    worker = Worker("issuer", settings)
    ca_keys = KeyRing.parse(settings.ca_keks.get_secret_value())
    register_ca_handlers(
        worker, CAService(sessions=worker.sessions, ca_keys=ca_keys, base_url=settings.base_url)
    )
    issuance = IssuanceService(
        sessions=worker.sessions,
        signers=SignerCache(ca_keys),
        leaf_keys=KeyRing.parse(settings.leaf_keks.get_secret_value()),
        subjects=worker.subjects,
        base_url=settings.base_url,
        lint_before_signing=settings.lint_before_signing,
    )

    async def consume(stopping: asyncio.Event) -> None:
        consumer = CommandConsumer(
            worker.broker.connection.jetstream(),
            worker.subjects,
            {worker.subjects.cmd_issue: issue_handler(issuance)},
            ConsumerSettings(batch_size=settings.batch_size),
        )
        await consumer.run(stopping)

    worker.add_loop(consume)
    return worker


def main() -> None:
    settings = IssuerSettings.load()
    configure_logging("issuer", settings.log_level)
    asyncio.run(build(settings).run())
