"""`certforge-issuer`: wires settings, key rings and handlers into a worker, then runs it."""

from __future__ import annotations

import asyncio
from typing import Any

from certforge.common.contracts.commands import IssueCertificate, RenewCertificate
from certforge.common.crypto.envelope import KeyRing
from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker, serve
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.cas import CAService
from certforge.issuer.consumer import CommandRoute, command_consumer
from certforge.issuer.handlers import (
    register_ca_handlers,
    register_rollover_handlers,
    request_route,
    revoke_route,
)
from certforge.issuer.issuing import IssuanceService
from certforge.issuer.keypool import KeyPool
from certforge.issuer.lint import LintCache
from certforge.issuer.revocation import RevocationPublisher
from certforge.issuer.rollover import RolloverService
from certforge.issuer.settings import IssuerSettings


def build(settings: IssuerSettings) -> Worker:
    assert settings.ca_keks is not None
    assert settings.leaf_keks is not None
    worker = Worker("issuer", settings)
    ca_keys = KeyRing.parse(settings.ca_keks.get_secret_value())
    leaf_keys = KeyRing.parse(settings.leaf_keks.get_secret_value())
    signers = SignerCache(ca_keys)
    cas = CAService(
        sessions=worker.sessions,
        ca_keys=ca_keys,
        leaf_keys=leaf_keys,
        base_url=settings.base_url,
        revocation=settings.revocation,
    )
    register_ca_handlers(worker, cas)
    register_rollover_handlers(
        worker,
        RolloverService(
            sessions=worker.sessions,
            ca_keys=ca_keys,
            leaf_keys=leaf_keys,
            base_url=settings.base_url,
            revocation=settings.revocation,
        ),
    )
    key_pool = KeyPool(worker.sessions, leaf_keys, settings.key_pool)
    issuance = IssuanceService(
        database=worker.database,
        signers=signers,
        leaf_keys=leaf_keys,
        subjects=worker.subjects,
        base_url=settings.base_url,
        lint_before_signing=settings.lint_before_signing,
        lint_cache=LintCache(settings.lint_cache_size),
        after_commit=worker.wake_relay,
        key_pool=key_pool,
    )
    revocation = RevocationPublisher(worker.sessions, signers, leaf_keys, settings.revocation)
    subjects = worker.subjects

    routes: dict[str, CommandRoute[Any]] = {
        subjects.cmd_issue: request_route(issuance, IssueCertificate),
        subjects.cmd_renew: request_route(issuance, RenewCertificate),
        subjects.cmd_revoke: revoke_route(revocation),
    }

    async def consume(stopping: asyncio.Event) -> None:
        js = worker.broker.connection.jetstream()
        await command_consumer(js, subjects, routes, settings.consumer).run(stopping)

    worker.add_loop(consume)
    worker.add_loop(revocation.run)
    worker.add_loop(key_pool.run)
    return worker


def main() -> None:
    settings = IssuerSettings.load_or_exit("certforge-issuer")
    configure_logging("issuer", settings.log_level)
    serve(build(settings))
