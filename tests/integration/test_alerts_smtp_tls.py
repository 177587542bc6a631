"""The email channel against real aiosmtpd servers speaking STARTTLS (port 587 style, login
required and only over TLS) and implicit TLS (port 465 style), with certificates of a test CA
the notifier is told to trust (`ca_file`): the message arrives; a wrong password fails at once;
an untrusted server certificate is a (retried) failure, never a message sent in clear.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts_kit import SmtpInbox
from certforge.common.alerts import AlertEvent, EmailChannel
from certforge.notifier.alert import Alert, AlertItem
from certforge.notifier.channels.base import PermanentChannelError, TransientChannelError
from certforge.notifier.channels.email import EmailSender
from certforge.notifier.settings import SmtpSettings
from sync_plugin_kit import server_certificate, sync_ca

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

USER, PASSWORD = "alerts", "s3cret-smtp-password"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def tls_files() -> Iterator[tuple[ssl.SSLContext, str]]:
    """The servers' TLS context and the CA file the client trusts."""
    cert_pem, key_pem = server_certificate("127.0.0.1")
    ca = sync_ca()
    with tempfile.TemporaryDirectory() as directory:
        chain = Path(directory, "chain.pem")
        chain.write_text(cert_pem + ca.issuing_pem)
        key = Path(directory, "key.pem")
        key.write_text(key_pem)
        trusted = Path(directory, "ca.pem")
        trusted.write_text(ca.root_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key)
        yield context, str(trusted)


@pytest.fixture(scope="module")
def starttls(tls_files: tuple[ssl.SSLContext, str]) -> Iterator[SmtpInbox]:
    inbox = SmtpInbox(
        tls_context=tls_files[0],
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
    )
    inbox.start()
    yield inbox
    inbox.stop()


@pytest.fixture(scope="module")
def implicit_tls(tls_files: tuple[ssl.SSLContext, str]) -> Iterator[SmtpInbox]:
    inbox = SmtpInbox(ssl_context=tls_files[0])
    inbox.start()
    yield inbox
    inbox.stop()


def _alert() -> Alert:
    now = datetime.now(UTC)
    return Alert(
        id=str(uuid4()),
        rule_id=uuid4(),
        rule="expiring-7d",
        event=AlertEvent.EXPIRING,
        application="shop",
        items=[
            AlertItem(
                kind="certificate",
                id=uuid4(),
                name="tls.example.com",
                not_after=now + timedelta(days=5),
            )
        ],
    )


def _sender(address: str, **smtp: Any) -> EmailSender:
    channel = EmailChannel(type="email", to=[address])
    return EmailSender(channel, SmtpSettings(host="127.0.0.1", timeout_seconds=5, **smtp))


async def test_starttls_with_a_login(
    starttls: SmtpInbox, tls_files: tuple[ssl.SSLContext, str]
) -> None:
    inbox = starttls
    sender = _sender(
        "tls@example.com",
        port=inbox.port,
        security="starttls",
        username=USER,
        password=PASSWORD,
        ca_file=tls_files[1],
    )
    await sender.send(_alert(), datetime.now(UTC))
    [message] = inbox.to("tls@example.com")
    assert "tls.example.com" in message["Subject"]
    assert message.get_body(preferencelist=("html",)) is not None


async def test_a_wrong_password_fails_at_once(
    starttls: SmtpInbox, tls_files: tuple[ssl.SSLContext, str]
) -> None:
    inbox = starttls
    sender = _sender(
        "denied@example.com",
        port=inbox.port,
        security="starttls",
        username=USER,
        password="wrong",
        ca_file=tls_files[1],
    )
    with pytest.raises(PermanentChannelError, match="refused the login"):
        await sender.send(_alert(), datetime.now(UTC))
    assert inbox.to("denied@example.com") == []


async def test_an_untrusted_server_is_not_sent_to(starttls: SmtpInbox) -> None:
    inbox = starttls
    sender = _sender(
        "untrusted@example.com",
        port=inbox.port,
        security="starttls",
        username=USER,
        password=PASSWORD,
    )
    with pytest.raises(TransientChannelError):
        await sender.send(_alert(), datetime.now(UTC))
    assert inbox.to("untrusted@example.com") == []


async def test_implicit_tls(implicit_tls: SmtpInbox, tls_files: tuple[ssl.SSLContext, str]) -> None:
    inbox = implicit_tls
    sender = _sender("465@example.com", port=inbox.port, security="tls", ca_file=tls_files[1])
    await sender.send(_alert(), datetime.now(UTC))
    assert len(inbox.to("465@example.com")) == 1
