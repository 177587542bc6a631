"""Test backends: real PostgreSQL and NATS JetStream, found or started.

PostgreSQL: `CERTFORGE_TEST_DATABASE_URL`, else `CERTFORGE_DATABASE_URL`, else
127.0.0.1:5432; if none answers, or it refuses us (a password, a missing role, no CREATEDB),
a one-line note says why and an embedded server is started in a temporary directory.
NATS likewise with `CERTFORGE_TEST_NATS_URL` / `CERTFORGE_NATS_URL` / 127.0.0.1:4222.
Every test session gets its own database and its own NATS namespace (stream and subject
names), so runs never collide, and drops the database at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from acme_responders import DnsServer, Http01Responder, TlsAlpnResponder
from certforge.common.crypto.envelope import KeyRing
from certforge.devstack import (
    create_database,
    drop_database,
    postgres_refusal,
    start_nats,
    start_postgres,
    url_reachable,
)
from harness import Backends, delete_namespace, running

collect_ignore = [
    suite
    for suite, variable in (("faults", "CERTFORGE_TEST_FAULTS"), ("scale", "CERTFORGE_TEST_SCALE"))
    if not os.environ.get(variable)
]
"""The fault-injection and scale-out suites run on their own (`make test-faults`, `make
test-scale`): each run takes minutes."""


def _first_env(*names: str, default: str) -> str:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _note(config: pytest.Config, text: str) -> None:
    """One line on the terminal, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{text}; starting an embedded PostgreSQL instead")


@pytest.fixture(scope="session")
def backends(pytestconfig: pytest.Config) -> Iterator[Backends]:
    state = Path(tempfile.mkdtemp(prefix="cf-test-", dir="/tmp"))
    stop = []
    pg_url = _first_env(
        "CERTFORGE_TEST_DATABASE_URL",
        "CERTFORGE_DATABASE_URL",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
    )
    reachable = url_reachable(pg_url)
    refusal = asyncio.run(postgres_refusal(pg_url)) if reachable else None
    if refusal is not None:
        _note(pytestconfig, f"PostgreSQL at {_without_password(pg_url)}: {refusal}")
    if not reachable or refusal is not None:
        pg = start_postgres(state)
        stop.append(pg.stop)
        pg_url = pg.url
    nats_url = _first_env(
        "CERTFORGE_TEST_NATS_URL", "CERTFORGE_NATS_URL", default="nats://127.0.0.1:4222"
    )
    if not url_reachable(nats_url):
        nats = start_nats(state)
        stop.append(nats.stop)
        nats_url = nats.url
    suffix = secrets.token_hex(4)
    name = f"cf_test_{suffix}"
    database_url = asyncio.run(create_database(pg_url, name))

    from certforge.common.db.migrations import upgrade

    upgrade(database_url)
    backends = Backends(
        server_url=pg_url,
        database_url=database_url,
        database_name=name,
        nats_url=nats_url,
        namespace=f"t{suffix}",
        ca_keks=KeyRing.generate_text("test-ca"),
        leaf_keks=KeyRing.generate_text("test-leaf"),
        admin_token="cf_test_" + secrets.token_urlsafe(24),
        state_dir=state,
    )
    try:
        yield backends
    finally:
        asyncio.run(_cleanup(backends))
        for stopper in reversed(stop):
            stopper()
        shutil.rmtree(state, ignore_errors=True)


async def _cleanup(backends: Backends) -> None:
    await drop_database(backends.server_url, backends.database_name)
    await delete_namespace(backends.nats_url, backends.namespace)


@pytest.fixture(scope="session")
def env_for(backends: Backends) -> Iterator[None]:
    """Put the backends into this process's environment, for settings classes."""
    saved = dict(os.environ)
    os.environ.update(backends.env())
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def issuer(backends: Backends, env_for: None) -> AsyncIterator[object]:
    """The real issuer worker, running in this process against the test backends."""
    from certforge.issuer.main import build
    from certforge.issuer.settings import IssuerSettings

    worker = build(IssuerSettings.load())
    async with running(worker):
        yield worker


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def syncer(backends: Backends, env_for: None, issuer: object) -> AsyncIterator[object]:
    """The real syncer worker in this process, retrying failed pushes after at most 1 s."""
    from certforge.syncer.main import build
    from certforge.syncer.settings import SyncerSettings, SyncSettings

    worker = build(
        SyncerSettings.load(
            syncer=SyncSettings(max_backoff_seconds=1, max_attempts=4, operation_timeout_seconds=5)
        )
    )
    async with running(worker):
        yield worker


@pytest.fixture(scope="session")
def acme_dns() -> Iterator[DnsServer]:
    """The session's authoritative DNS server (`acme_responders.DnsServer`): every name under
    `.test` is 127.0.0.1 unless a test sets otherwise; the validator resolves through it."""
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http01_responder() -> Iterator[Http01Responder]:
    """The session's http-01 responder on 127.0.0.1 and ::1: the validator's `http01_port`."""
    responder = Http01Responder().start()
    yield responder
    responder.stop()


@pytest.fixture(scope="session")
def tls_alpn_responder() -> Iterator[TlsAlpnResponder]:
    """The session's tls-alpn-01 listener on 127.0.0.1 and ::1: the validator's
    `tls_alpn01_port`."""
    responder = TlsAlpnResponder().start()
    yield responder
    responder.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def validator(
    backends: Backends,
    env_for: None,
    acme_dns: DnsServer,
    http01_responder: Http01Responder,
    tls_alpn_responder: TlsAlpnResponder,
) -> AsyncIterator[object]:
    """The real validator worker in this process: names resolved by `acme_dns`, http-01 and
    tls-alpn-01 checked against the session responders' ports, private targets allowed (the
    responders are on loopback), one quick retry after a connection failure."""
    from certforge.validator.main import build
    from certforge.validator.settings import ValidationSettings, ValidatorSettings

    worker = build(
        ValidatorSettings.load(
            validator=ValidationSettings(
                http01_port=http01_responder.port,
                tls_alpn01_port=tls_alpn_responder.port,
                https_port=tls_alpn_responder.port,
                resolver=acme_dns.nameserver,
                allow_private_targets=True,
                connect_timeout_seconds=2,
                read_timeout_seconds=3,
                attempt_timeout_seconds=10,
                retries=1,
                retry_base_seconds=0.05,
            )
        )
    )

    async with running(worker):
        yield worker


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def smtp_server() -> AsyncIterator[object]:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps every message."""
    from alerts_kit import SmtpInbox

    inbox = SmtpInbox()
    inbox.start()
    yield inbox
    inbox.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def alert_receiver() -> AsyncIterator[object]:
    """A real local HTTP server that records every request (webhooks, Slack, PagerDuty) and
    answers with the status a test sets per path."""
    from alerts_kit import Receiver

    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def notifier(
    backends: Backends,
    env_for: None,
    issuer: object,
    smtp_server: object,
    alert_receiver: object,
) -> AsyncIterator[object]:
    """The real notifier worker in this process, with `alerts_kit.notifier_options`: mail to
    `smtp_server`, PagerDuty at `alert_receiver`, a scan every second, a failed delivery retried
    after at most 1 s (3 tries), event digests gathered for 3 s."""
    from alerts_kit import notifier_options
    from certforge.notifier.main import build
    from certforge.notifier.settings import NotifierSettings

    options = notifier_options(smtp_server, alert_receiver)
    worker = build(NotifierSettings.load(notifier=options))
    async with running(worker):
        yield worker


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def second_issuer(backends: Backends, env_for: None, issuer: object) -> AsyncIterator[object]:
    """A second issuer replica in this process, sharing the commands' durable consumer with
    `issuer`, for the module that asks for it (issue 17: replicas issue correctly together)."""
    from certforge.issuer.main import build
    from certforge.issuer.settings import IssuerSettings

    worker = build(IssuerSettings.load())
    async with running(worker):
        yield worker
