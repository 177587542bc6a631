"""Syncs when destinations fail, through the API and the REAL running syncer (retries after at
most 1 s, 4 attempts, 5 s per operation: the session's `syncer` fixture).

- down for a while (a webhook answering 503, moto_server behind a proxy that stops listening
  and comes back on the same port) → retried, then `succeeded`, attempts > 1, one object;
- down for good (503 every time) → `failed` after the 4 attempts, a `sync.failed` event;
- permanent refusals (webhook 400, ACM refusing made-up credentials with moto's auth on) →
  `failed` at the first attempt with the destination's message, a `sync.failed` event;
- a CSR certificate to a destination that needs the key (ACM) → `skipped` with the reason;
- a destination that accepts connections and never answers → `pending` with the reason
  after the operation timeout, while other destinations are served meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
import test_sync_plugin_aws as aws_tests

from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm, SanType, SubjectFields
from certforge.common.template import San
from issuance_kit import enroll, issue
from sync_plugin_kit import SilentServer
from syncs_kit import (
    PUSHED,
    TcpProxy,
    WebhookReceiver,
    create_sync,
    states,
    syncs_url,
    wait_state,
    wait_status,
    wait_sync_event,
    webhook_credentials,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

moto = aws_tests.moto  # the plugin tests' moto_server fixture (an open and an auth server)

AWS_CREDENTIALS = {"access_key_id": aws_tests.ACCESS_KEY, "secret_access_key": aws_tests.SECRET_KEY}
MAX_ATTEMPTS = 4  # the session syncer's


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = await WebhookReceiver().start()
    yield started
    await started.stop()


def _acm_settings(url: str) -> dict[str, Any]:
    return {"region": aws_tests.REGION, "endpoint_url": url}


def _lineage_arns(moto: aws_tests.Moto, lineage: str) -> list[str]:
    client = moto.client("acm")
    arns = [
        c["CertificateArn"]
        for page in client.get_paginator("list_certificates").paginate()
        for c in page["CertificateSummaryList"]
    ]
    return [
        arn
        for arn in arns
        for tag in client.list_tags_for_certificate(CertificateArn=arn)["Tags"]
        if tag["Key"] == "certforge:lineage-id" and tag.get("Value") == lineage
    ]


async def test_destinations_down_for_a_while_are_retried_until_back(
    admin: httpx.AsyncClient, syncer: Any, receiver: WebhookReceiver, moto: aws_tests.Moto
) -> None:
    url, hook = receiver.hook(plan=[503, 503])
    proxy = await TcpProxy(int(moto.url.rsplit(":", 1)[1])).up()
    await proxy.down()  # moto "stopped": its port refuses connections
    try:
        e = await enroll(admin)
        webhook = await create_sync(
            admin, e.app, "webhook", {"url": url}, credentials=webhook_credentials(hook)
        )
        acm = await create_sync(
            admin, e.app, "aws-acm", _acm_settings(proxy.url), credentials=AWS_CREDENTIALS
        )
        issued = (await issue(admin, e, common_name="retry.example.com"))["certificate"]

        # ACM: down, tried twice, each time recorded as pending with the reason
        pending = await wait_state(
            admin,
            e.app,
            acm["id"],
            lambda s: s["status"] == "pending" and s["attempts"] >= 2,
            what="ACM pending after two attempts",
        )
        assert "unreachable" in pending["last_error"], pending
        assert pending["external_id"] is None
        await proxy.up()  # back, on the same port
        state = await wait_status(admin, e.app, acm["id"], issued["id"], "succeeded")
        assert state["attempts"] > 2
        assert state["last_error"] is None
        assert proxy.connections > 0
        assert _lineage_arns(moto, issued["id"]) == [state["external_id"]]  # no duplicate

        # webhook: 503 twice, then accepted once
        state = await wait_status(admin, e.app, webhook["id"], issued["id"], "succeeded")
        assert state["attempts"] == 3
        assert [status for status, _ in hook.received] == [503, 503, 200]
        assert len(hook.accepted_of(PUSHED, issued["id"])) == 1
    finally:
        await proxy.down()


async def test_down_for_good_fails_after_the_last_attempt(
    admin: httpx.AsyncClient, api_app: Any, syncer: Any, receiver: WebhookReceiver
) -> None:
    url, hook = receiver.hook(status=503)
    e = await enroll(admin)
    sync = await create_sync(
        admin, e.app, "webhook", {"url": url}, credentials=webhook_credentials(hook)
    )
    issued = (await issue(admin, e, common_name="down.example.com"))["certificate"]
    state = await wait_status(admin, e.app, sync["id"], issued["id"], "failed")
    assert state["attempts"] == MAX_ATTEMPTS
    assert state["last_error"] == "webhook answered 503"
    assert len(hook.received) == MAX_ATTEMPTS
    event = await wait_sync_event(
        api_app, e.app, "sync.failed", lambda d: d["certificate_id"] == issued["id"]
    )
    assert event["data"]["attempts"] == MAX_ATTEMPTS
    assert event["data"]["error"] == "webhook answered 503"
    assert event["data"]["sync_id"] == sync["id"]
    assert event["data"]["kind"] == "webhook"


async def test_permanent_refusals_fail_at_once_with_the_destinations_message(
    admin: httpx.AsyncClient,
    api_app: Any,
    syncer: Any,
    receiver: WebhookReceiver,
    moto: aws_tests.Moto,
) -> None:
    url, hook = receiver.hook(status=400)
    e = await enroll(admin)
    webhook = await create_sync(
        admin, e.app, "webhook", {"url": url}, credentials=webhook_credentials(hook)
    )
    # moto with authentication on: the made-up key pair is refused as AWS refuses it
    acm = await create_sync(
        admin, e.app, "aws-acm", _acm_settings(moto.auth_url), credentials=AWS_CREDENTIALS
    )
    issued = (await issue(admin, e, common_name="refused.example.com"))["certificate"]

    state = await wait_status(admin, e.app, webhook["id"], issued["id"], "failed")
    assert state["attempts"] == 1
    assert state["last_error"] == "webhook answered 400"
    assert len(hook.received) == 1  # not retried

    state = await wait_status(admin, e.app, acm["id"], issued["id"], "failed")
    assert state["attempts"] == 1
    assert "credentials or permissions refused" in state["last_error"]
    assert "InvalidClientTokenId" in state["last_error"]
    assert aws_tests.SECRET_KEY not in state["last_error"]

    for sync, expected in ((webhook, "webhook answered 400"), (acm, "InvalidClientTokenId")):
        event = await wait_sync_event(api_app, e.app, "sync.failed", _of_sync(sync["id"]))
        assert expected in event["data"]["error"]
        assert event["data"]["attempts"] == 1
        assert event["data"]["certificate_id"] == issued["id"]


def _of_sync(sync_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda data: bool(data["sync_id"] == sync_id)


async def test_csr_certificate_is_skipped_where_the_key_is_needed(
    admin: httpx.AsyncClient, syncer: Any, moto: aws_tests.Moto, tmp_path: Any
) -> None:
    e = await enroll(admin)
    acm = await create_sync(
        admin, e.app, "aws-acm", _acm_settings(moto.url), credentials=AWS_CREDENTIALS
    )
    directory = await create_sync(admin, e.app, "directory", {"path": str(tmp_path)})
    csr = build_csr(
        generate_private_key(KeyAlgorithm.EC_P256),
        SubjectFields(common_name="csr.example.com"),
        [San(type=SanType.DNS, value="csr.example.com")],
    )
    issued = (await issue(admin, e, method="csr", csr=csr_to_pem(csr)))["certificate"]

    state = await wait_status(admin, e.app, acm["id"], issued["id"], "skipped")
    assert "aws-acm needs the private key" in state["last_error"]
    assert "CSR" in state["last_error"]
    assert state["external_id"] is None
    assert _lineage_arns(moto, issued["id"]) == []

    # A destination that takes certificates without keys gets it, without a key file.
    state = await wait_status(admin, e.app, directory["id"], issued["id"], "succeeded")
    folder = tmp_path / state["external_id"].rsplit("/", 1)[1]
    assert (folder / "cert.pem").read_text() == issued["certificate"]
    assert not (folder / "key.pem").exists()


async def test_a_hanging_destination_does_not_hold_up_the_others(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Any
) -> None:
    silent = await SilentServer().start()
    try:
        e = await enroll(admin)
        hanging = await create_sync(
            admin,
            e.app,
            "webhook",
            # its own timeout is longer than the syncer's 5 s limit per operation
            {"url": f"http://127.0.0.1:{silent.port}/hook", "timeout_seconds": 60},
            credentials={"hmac_secret": "a-long-enough-secret"},
        )
        same_app = await create_sync(admin, e.app, "directory", {"path": str(tmp_path / "a")})
        other = await enroll(admin)
        elsewhere = await create_sync(admin, other.app, "directory", {"path": str(tmp_path / "b")})

        first = (await issue(admin, e, common_name="hang.example.com"))["certificate"]
        await wait_status(admin, e.app, same_app["id"], first["id"], "succeeded")
        # While the push to the silent server hangs, other certificates are synced.
        second = (await issue(admin, other, common_name="meanwhile.example.com"))["certificate"]
        await wait_status(admin, other.app, elsewhere["id"], second["id"], "succeeded")
        assert await states(admin, e.app, hanging["id"]) == [], "served only after the hang"

        # Then the hanging push counts as a transient failure, with the reason.
        state = await wait_status(admin, e.app, hanging["id"], first["id"], "pending")
        assert state["last_error"] == "the destination did not answer in time"
        assert state["attempts"] == 1

        # Deleting the sync stops its retries.
        r = await admin.delete(f"{syncs_url(e.app)}/{hanging['id']}")
        assert r.status_code == 204, r.text
    finally:
        await silent.stop()
