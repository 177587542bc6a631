"""Helpers of the alert tests (`test_alerts_*.py`): a real SMTP server (aiosmtpd), a real local
HTTP receiver that records webhook, Slack and PagerDuty requests (and verifies Standard Webhooks
signatures with the `standardwebhooks` package), the API calls, and the database reads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import httpx
import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from sqlmodel import col, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from admin_kit import API, ok, uid
from certforge.common.db.tables import AlertDelivery, AlertFiring, AlertRule
from certforge.devstack import free_port
from certforge.notifier.settings import NotifierOptions, SmtpSettings
from lifecycle_kit import eventually

# --- SMTP ---------------------------------------------------------------------------------------


class _Keep:
    def __init__(self, inbox: SmtpInbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._inbox.lock:
            self._inbox.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpInbox:
    """aiosmtpd on a free loopback port, in its own thread; keeps (recipients, message).
    `server` options go to aiosmtpd (TLS contexts, STARTTLS, authentication)."""

    def __init__(self, **server: Any) -> None:
        self.port = free_port()
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port, **server)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.messages if address in rcpt]


# --- HTTP receiver ------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """One path of the receiver: the statuses it answers and what it got."""

    secret: str | None = None
    """A Standard Webhooks secret: requests are verified with the reference verifier."""
    status: int = 200
    plan: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    """Every request: `headers`, `body` (parsed JSON), `status` answered, `verified`."""

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [r for r in self.received if r["status"] < 300]


class Receiver:
    """A real HTTP server (aiohttp, on the test loop): `POST /e/<name>` per endpoint, and the
    PagerDuty Events API at `/pd/v2/enqueue` (routing keys tell the tests' services apart)."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.pagerduty = Endpoint(status=202)
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/e/{name}", self._endpoint)
        app.router.add_post("/pd/v2/enqueue", self._pagerduty)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def endpoint(self, *, secret: str | None = None, status: int = 200) -> tuple[str, Endpoint]:
        name = uid("e")
        endpoint = Endpoint(secret=secret, status=status)
        self.endpoints[name] = endpoint
        return f"{self.url}/e/{name}", endpoint

    async def _endpoint(self, request: web.Request) -> web.Response:
        endpoint = self.endpoints.get(request.match_info["name"])
        if endpoint is None:
            return web.Response(status=404)
        return await _record(endpoint, request)

    async def _pagerduty(self, request: web.Request) -> web.Response:
        return await _record(self.pagerduty, request)

    def pagerduty_events(self, routing_key: str) -> list[dict[str, Any]]:
        return [
            r["body"] for r in self.pagerduty.accepted if r["body"]["routing_key"] == routing_key
        ]


async def _record(endpoint: Endpoint, request: web.Request) -> web.Response:
    raw = await request.read()
    headers = dict(request.headers)
    verified = None
    if endpoint.secret is not None:
        try:
            Webhook(endpoint.secret).verify(raw, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
    status = endpoint.plan.pop(0) if endpoint.plan else endpoint.status
    if verified is False:
        status = 401
    endpoint.received.append(
        {"headers": headers, "body": orjson.loads(raw), "status": status, "verified": verified}
    )
    return web.Response(status=status, text="ok" if status < 300 else "refused")


def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def routing_key() -> str:
    return secrets.token_hex(16)


def notifier_options(smtp: SmtpInbox, receiver: Receiver) -> NotifierOptions:
    """What the tests' notifier runs with: quick scans, quick retries."""
    return NotifierOptions(
        smtp=SmtpSettings(
            host="127.0.0.1", port=smtp.port, security="none", sender="certforge@test.example"
        ),
        pagerduty_url=f"{receiver.url}/pd",  # type: ignore[arg-type]
        scan_interval=timedelta(seconds=1),
        poll_interval_seconds=0.2,
        max_attempts=3,
        max_backoff_seconds=1,
        timeout_seconds=5,
        digest_wait_seconds=3,
    )


# --- the API ------------------------------------------------------------------------------------


def alerts_url(app: str) -> str:
    return f"{API}/applications/{app}/alerts"


async def create_alert(
    client: httpx.AsyncClient, app: str, event: str, channels: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    body = {"name": uid("alert"), "event": event, "channels": channels, **fields}
    created: dict[str, Any] = ok(await client.post(alerts_url(app), json=body), 201)
    return created


async def deliveries(client: httpx.AsyncClient, app: str, alert_id: str) -> list[dict[str, Any]]:
    page: dict[str, Any] = ok(await client.get(f"{alerts_url(app)}/{alert_id}/deliveries"))
    return list(page["items"])


async def wait_deliveries(
    client: httpx.AsyncClient,
    app: str,
    alert_id: str,
    check: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,  # noqa: ASYNC109 - a deadline for the polling
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def probe() -> list[dict[str, Any]] | None:
        nonlocal seen
        seen = await deliveries(client, app, alert_id)
        return seen if check(seen) else None

    try:
        return await eventually(probe, timeout, "deliveries")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; deliveries: {seen}") from None


# --- the database -------------------------------------------------------------------------------


async def rule_row(api_app: Any, alert_id: str) -> AlertRule:
    async with api_app.state.certforge.sessions() as session:
        row = await session.get(AlertRule, UUID(alert_id))
        assert row is not None
        return row


async def firings(api_app: Any, alert_id: str) -> list[AlertFiring]:
    async with api_app.state.certforge.sessions() as session:
        return list(
            await session.exec(select(AlertFiring).where(AlertFiring.rule_id == UUID(alert_id)))
        )


async def delivery_rows(api_app: Any, alert_id: str) -> list[AlertDelivery]:
    async with api_app.state.certforge.sessions() as session:
        return list(
            await session.exec(
                select(AlertDelivery)
                .where(AlertDelivery.rule_id == UUID(alert_id))
                .order_by(col(AlertDelivery.created_at))
            )
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


async def settle(seconds: float = 1.5) -> None:
    """Give scans and deliveries time to (wrongly) send more, before counting."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(seconds)
