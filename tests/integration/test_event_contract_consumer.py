"""A consumer outside Certforge takes one application's events and checks each against the
published contract.

Two applications each issue, renew and revoke a certificate through the real api and issuer.
A durable consumer filtered on `<ns>.evt.<application>.>` and replaying from a point in time
(`DeliverPolicy.BY_START_TIME`, the moment before the first request) receives exactly that
application's three events, none of the other's, each valid against its schema in
`docs/asyncapi.json` (judged by `jsonschema`, not by our models), with the NATS headers the
document promises. The same consumer written with FastStream, as docs/events.md shows it,
receives the same three, with the documented decoder and without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from faststream import FastStream
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy

from certforge.common.contracts.events import (
    CertificateIssued,
    CertificateRenewed,
    CertificateRevoked,
)
from event_contract_kit import problems
from issuance_kit import WAIT, Enrollment, enroll, enroll_new_application, issue

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LIFE = {CertificateIssued.event_type, CertificateRenewed.event_type, CertificateRevoked.event_type}


async def live_one_certificate(admin: httpx.AsyncClient, e: Enrollment) -> list[str]:
    """Issue, renew (over the API) and revoke the renewal; the certificate ids, in order."""
    first = (await issue(admin, e, common_name=f"c{uuid4().hex[:8]}.example.com"))["certificate"]
    r = await admin.post(f"{e.certificates}/{first['id']}/renew", headers=WAIT, json={})
    assert r.status_code == 201, r.text
    second = r.json()["certificate"]
    r = await admin.post(f"{e.certificates}/{second['id']}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    return [first["id"], second["id"]]


async def take(
    nc: Client, stream: str, subject: str, since: datetime, want: int
) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """What a durable pull consumer on `subject` replaying from `since` receives: `want`
    messages, then whatever else arrives within a second (nothing, if the filter holds)."""
    js = nc.jetstream()
    durable = f"audit_{uuid4().hex[:8]}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=since.isoformat(),
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    subscription = await js.pull_subscribe_bind(durable, stream)
    got: list[tuple[str, dict[str, str], dict[str, Any]]] = []
    deadline = asyncio.get_running_loop().time() + 20
    try:
        while len(got) < want and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(NatsTimeoutError, TimeoutError):
                for m in await subscription.fetch(10, timeout=1):
                    got.append((m.subject, dict(m.headers or {}), json.loads(m.data)))
                    await m.ack()
        with contextlib.suppress(NatsTimeoutError, TimeoutError):
            for m in await subscription.fetch(10, timeout=1):
                got.append((m.subject, dict(m.headers or {}), json.loads(m.data)))
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, durable)
    return got


async def test_a_consumer_on_one_application_gets_exactly_its_events(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    context = api_app.state.certforge
    e = await enroll(admin)
    other = await enroll_new_application(
        admin, e.root, e.issuing, e.policy, {"slug": e.profile, "id": e.profile_id}
    )
    since = datetime.now(UTC)
    mine = await live_one_certificate(admin, e)
    await live_one_certificate(admin, other)

    subjects = context.subjects
    got = await take(
        context.nats, subjects.events_stream, subjects.event(e.app, ">"), since, len(LIFE)
    )

    assert sorted(event["type"] for _, _, event in got) == sorted(LIFE), [s for s, _, _ in got]
    for subject, headers, event in got:
        name = subject.removeprefix(subjects.event(e.app, ""))
        assert subject == subjects.event(e.app, name), subject
        assert event["data"]["application"] == e.app
        assert event["data"]["certificate_id"] in mine
        assert problems(event) == [], (event["type"], problems(event))
        assert headers["Content-Type"] == "application/cloudevents+json"
        assert headers["Nats-Msg-Id"] == event["id"]


def decode_cloudevent(message: NatsMessage) -> Any:
    """docs/events.md's decoder: FastStream decodes only `application/json` bodies itself and
    hands a CloudEvent (`application/cloudevents+json`) over as bytes."""
    return json.loads(message.body)


@pytest.mark.parametrize(
    "decoder", [decode_cloudevent, None], ids=["documented-decoder", "faststream-default"]
)
async def test_the_faststream_consumer_of_the_docs_receives_the_same(
    admin: httpx.AsyncClient, api_app: Any, backends: Any, decoder: Any
) -> None:
    """Without a decoder FastStream also decodes today's events, because it looks only for a
    lower-case `content-type` header and, finding none (the relay writes `Content-Type`),
    tries JSON; the decoder keeps a consumer independent of that detail."""
    context = api_app.state.certforge
    subjects = context.subjects
    e = await enroll(admin)
    since = datetime.now(UTC)
    await live_one_certificate(admin, e)

    broker = NatsBroker(backends.nats_url)
    received: list[dict[str, Any]] = []
    done = asyncio.Event()
    durable = f"fs_audit_{uuid4().hex[:8]}"

    @broker.subscriber(
        subjects.event(e.app, ">"),
        stream=JStream(subjects.events_stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=10, timeout=1),
        deliver_policy=DeliverPolicy.BY_START_TIME,
        config=ConsumerConfig(opt_start_time=since.isoformat()),
        decoder=decoder,
    )
    async def on_event(event: dict[str, Any]) -> None:
        received.append(event)
        if len(received) >= len(LIFE):
            done.set()

    app = FastStream(broker)
    async with broker:
        await broker.start()
        try:
            await asyncio.wait_for(done.wait(), timeout=20)
        finally:
            with contextlib.suppress(Exception):
                await broker.connection.jetstream().delete_consumer(subjects.events_stream, durable)
    assert app is not None
    assert sorted(event["type"] for event in received) == sorted(LIFE)
    assert all(problems(event) == [] for event in received)
