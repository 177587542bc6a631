"""The webhook destination signs per Standard Webhooks; receivers verify with `standardwebhooks`.

A real HTTP server (aiohttp, in this process) records each request; every check verifies with
the `standardwebhooks` package as a receiver would, never with our own signing code:
1. the plugin's pushes verify for both kinds of secret (a plain string stored by earlier
   releases, handed to the verifier as `standard_secret(...)`, and a `whsec_` secret as is);
   a changed body or another secret does not verify; `webhook-id` is the CloudEvent id and
   stays the same when the same push is retried;
2. the legacy `Certforge-Signature` header is sent by default (and still verifies), and not
   when the sync turns `legacy_signature` off;
3. end to end: a sync created over the API with a `whsec_` secret, a certificate issued over
   the API, the running syncer's request verified by `standardwebhooks`;
4. a `whsec_` secret that is not base64 of 24 to 64 bytes is a 422 naming the field, whose
   message does not quote the secret.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from admin_kit import problem
from certforge.common.destinations.webhook import (
    WebhookCredentials,
    WebhookSettings,
    standard_secret,
)
from certforge.syncer.plugins.base import SyncItem
from certforge.syncer.plugins.webhook import PUSHED, SIGNATURE_HEADER, WebhookDestination, verify
from issuance_kit import enroll, issue
from syncs_kit import create_sync, eventually, sync_body, syncs_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Records every request, verified by nobody: each test verifies as a receiver would."""

    port: int = 0
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest_asyncio.fixture(loop_scope="session")
async def recorder() -> AsyncIterator[Recorder]:
    recorded = Recorder()

    async def receive(request: web.Request) -> web.Response:
        recorded.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorded.port = int(runner.addresses[0][1])
    yield recorded
    await runner.cleanup()


def item() -> SyncItem:
    return SyncItem(
        name="shop-web",
        lineage_id=uuid4(),
        certificate_id=uuid4(),
        application="shop",
        profile="web",
        common_name="web.shop.example",
        serial_number="0a",
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
        certificate_pem="-----BEGIN CERTIFICATE-----\n...",
        chain_pem="",
        private_key_pem=None,
    )


def destination(url: str, secret: str, **settings: Any) -> WebhookDestination:
    return WebhookDestination(
        WebhookSettings.model_validate({"url": url, **settings}),
        WebhookCredentials.model_validate({"hmac_secret": secret}),
        development=True,
    )


WHSEC = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
PLAIN = "an-old-style-secret-" + secrets.token_hex(8)


@pytest.mark.parametrize("secret", [PLAIN, WHSEC], ids=["ok/plain-secret", "ok/whsec-secret"])
async def test_pushes_verify_with_the_standardwebhooks_package(
    recorder: Recorder, secret: str
) -> None:
    recorder.received.clear()
    hook = destination(recorder.url, secret)
    pushed = item()
    try:
        await hook.push(pushed)
        await hook.push(pushed)  # a retry of the same push
    finally:
        await hook.close()
    first, retry = recorder.received
    verifier = Webhook(standard_secret(secret))
    event = verifier.verify(first.body, first.headers)
    assert event["type"] == PUSHED
    assert event["data"]["certificate_id"] == str(pushed.certificate_id)
    assert first.headers["webhook-id"] == event["id"]
    assert retry.headers["webhook-id"] == first.headers["webhook-id"], "same id on a retry"
    assert first.headers["Content-Type"] == "application/cloudevents+json"

    with pytest.raises(WebhookVerificationError):
        verifier.verify(first.body.replace(b"shop", b"shoq"), first.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(secrets.token_bytes(32)).decode()).verify(
            first.body, first.headers
        )


async def test_the_legacy_header_is_sent_until_the_sync_turns_it_off(
    recorder: Recorder,
) -> None:
    recorder.received.clear()
    for settings in ({}, {"legacy_signature": False}):
        hook = destination(recorder.url, PLAIN, **settings)
        try:
            await hook.push(item())
        finally:
            await hook.close()
    default, new_only = recorder.received
    assert verify(
        PLAIN.encode(), default.headers[SIGNATURE_HEADER], default.body, now=int(time.time())
    )
    assert SIGNATURE_HEADER not in new_only.headers
    for got in (default, new_only):
        Webhook(standard_secret(PLAIN)).verify(got.body, got.headers)


async def test_the_running_syncer_signs_with_a_whsec_secret(
    admin: httpx.AsyncClient, syncer: Any, recorder: Recorder
) -> None:
    recorder.received.clear()
    e = await enroll(admin)
    await create_sync(
        admin,
        e.app,
        "webhook",
        {"url": recorder.url, "legacy_signature": False},
        credentials={"hmac_secret": WHSEC},
    )
    issued = (await issue(admin, e, common_name="signed.example.com"))["certificate"]

    await eventually(lambda: recorder.received, timeout=20, what="the webhook request")
    got = recorder.received[0]
    event = Webhook(WHSEC).verify(got.body, got.headers)
    assert event["data"]["certificate_id"] == issued["id"]
    assert SIGNATURE_HEADER not in got.headers


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        pytest.param("whsec_" + "!" * 40, "followed by base64", id="fail/not-base64"),
        pytest.param(
            "whsec_" + base64.b64encode(b"k" * 16).decode(),
            "24 to 64 bytes, not 16",
            id="fail/key-too-short",
        ),
        pytest.param(
            "whsec_" + base64.b64encode(b"k" * 65).decode(),
            "24 to 64 bytes, not 65",
            id="fail/key-too-long",
        ),
    ],
)
async def test_a_bad_whsec_secret_is_refused_naming_the_field(
    admin: httpx.AsyncClient, recorder: Recorder, secret: str, message: str
) -> None:
    e = await enroll(admin)
    r = await admin.post(
        syncs_url(e.app),
        json=sync_body("webhook", {"url": recorder.url}, credentials={"hmac_secret": secret}),
    )
    body = problem(r, 422, "credentials.hmac_secret")
    assert message in r.text, body
    assert secret not in r.text
