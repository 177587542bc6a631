"""An email channel is refused with a 422 when the notifier has no SMTP server: the api asks the
notifier that will deliver (`rpc.alert.channels`), the one holder of the SMTP settings.

This needs a notifier configured differently from the session's, so the test runs a second
api and a second REAL notifier on a NATS namespace of their own (the database is shared); with
no notifier answering at all, the api cannot know, and says so with a 503.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from admin_kit import every, problem, uid
from alerts_kit import alerts_url
from certforge.common.alerts import SMTP_NOT_CONFIGURED
from certforge.common.settings import NatsSettings
from harness import Backends, delete_namespace
from issuance_kit import Enrollment, enroll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SLACK = "https://hooks.slack.example/services/T0/B0/x"


@pytest.fixture(scope="module")
async def namespace(backends: Backends) -> AsyncIterator[str]:
    name = f"t{secrets.token_hex(4)}"
    yield name
    await delete_namespace(backends.nats_url, name)


@pytest.fixture(scope="module")
async def other_api(env_for: None, namespace: str, backends: Backends) -> AsyncIterator[Any]:
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    app = create_app(ApiSettings.load(nats=NatsSettings(namespace=namespace)))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://certforge.test",
            headers={"Authorization": f"Bearer {backends.admin_token}"},
        )
        yield client
        await client.aclose()


async def _run_notifier_without_smtp(namespace: str) -> tuple[Any, asyncio.Task[None]]:
    from certforge.notifier.main import build
    from certforge.notifier.settings import NotifierOptions, NotifierSettings, SmtpSettings

    worker = build(
        NotifierSettings.load(
            nats=NatsSettings(namespace=namespace),
            notifier=NotifierOptions(smtp=SmtpSettings(host=None)),
        )
    )
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    task = asyncio.create_task(worker.run(on_started, handle_signals=False))
    await asyncio.wait_for(started.wait(), timeout=30)
    return worker, task


async def test_email_needs_an_smtp_server_at_the_notifier(
    admin: httpx.AsyncClient, other_api: httpx.AsyncClient, namespace: str
) -> None:
    e: Enrollment = await enroll(admin)
    email = {
        "name": uid(),
        "event": "issued",
        "channels": [{"type": "email", "to": ["a@b.example"]}],
    }

    # Nobody to ask: a 503, and nothing stored.
    body = problem(await other_api.post(alerts_url(e.app), json=email), 503)
    assert "notifier" in body["detail"]

    worker, task = await _run_notifier_without_smtp(namespace)
    try:
        refused = problem(
            await other_api.post(alerts_url(e.app), json=email), 422, "channels.0.type"
        )
        assert SMTP_NOT_CONFIGURED in str(refused["errors"])
        # Every problem at once: the window too.
        both = {**email, "before": "7d"}
        problem(
            await other_api.post(alerts_url(e.app), json=both), 422, "channels.0.type", "before"
        )
        # A rule without email never asks, and is stored.
        slack = {**email, "channels": [{"type": "slack", "url": SLACK}]}
        created = await other_api.post(alerts_url(e.app), json=slack)
        assert created.status_code == 201, created.text
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)
    listed = await every(admin, alerts_url(e.app))
    assert [a["channels"][0]["type"] for a in listed] == ["slack"]
