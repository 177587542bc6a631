"""Email over SMTP: one message with a plain-text and an HTML part (multipart/alternative).

STARTTLS or implicit TLS, verified against the system's CAs or `ca_file`; a login when the
settings give one. A refused recipient or login is permanent; a connection failure, a timeout
or a 4xx reply (greylisting, a full queue) is retried.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from certforge.common.alerts import EmailChannel
from certforge.notifier.alert import Alert, html_text, plain_text, summary
from certforge.notifier.channels.base import (
    PEER_MESSAGE_LIMIT,
    PermanentChannelError,
    TransientChannelError,
)
from certforge.notifier.settings import SmtpSettings


def build_message(alert: Alert, sender: str, to: list[str], now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = summary(alert, now)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(idstring=alert.id, domain="certforge")
    message["X-Certforge-Alert"] = str(alert.rule_id)
    message.set_content(plain_text(alert, now))
    message.add_alternative(html_text(alert, now), subtype="html")
    return message


class EmailSender:
    def __init__(self, channel: EmailChannel, smtp: SmtpSettings) -> None:
        if smtp.host is None:
            raise PermanentChannelError("no SMTP server is configured for the notifier")
        self._to = list(channel.to)
        self._smtp = smtp

    def _tls(self) -> ssl.SSLContext | None:
        if self._smtp.security == "none":
            return None
        return ssl.create_default_context(cafile=self._smtp.ca_file)

    async def send(self, alert: Alert, now: datetime) -> None:
        smtp = self._smtp
        message = build_message(alert, smtp.sender, self._to, now)
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",
                tls_context=self._tls(),
                timeout=smtp.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentChannelError(f"the SMTP server refused the recipients: {exc}") from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentChannelError("the SMTP server refused the login") from exc
        except aiosmtplib.SMTPResponseException as exc:
            text = f"the SMTP server answered {exc.code}: {exc.message[:PEER_MESSAGE_LIMIT]}"
            if 400 <= exc.code < 500:
                raise TransientChannelError(text) from exc
            raise PermanentChannelError(text) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientChannelError(
                f"the SMTP server is unreachable ({type(exc).__name__})"
            ) from exc
