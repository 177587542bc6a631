"""`certforge-issuer`: wires settings, key rings and handlers into a worker, then runs it."""

from __future__ import annotations

import asyncio

from certforge.common.crypto.envelope import KeyRing
from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker
from certforge.issuer.cas import CAService
from certforge.issuer.handlers import register_ca_handlers
from certforge.issuer.settings import IssuerSettings


def build(settings: IssuerSettings) -> Worker:
    assert settings.ca_keks is not None
    worker = Worker("issuer", settings)
    ca_service = CAService(
        sessions=worker.sessions,
        ca_keys=KeyRing.parse(settings.ca_keks.get_secret_value()),
        base_url=settings.base_url,
    )
    register_ca_handlers(worker, ca_service)
    return worker


def main() -> None:
    settings = IssuerSettings.load()
    configure_logging("issuer", settings.log_level)
    asyncio.run(build(settings).run())
