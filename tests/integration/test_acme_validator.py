"""The validator against real peers: each challenge type passed and failed, IP identifiers,
wildcards, redirects, refused targets, redelivery, and the verdict's effect on authorization,
order and events.

ACME rows are written directly (account, order, authorizations, challenges in `processing`)
and the `ValidateChallenge` command goes through the outbox, as the api's challenge POST does;
the session's validator consumes it. Its resolver is the session's DNS server (every `.test`
name is 127.0.0.1) and its ports are the session responders'.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import nats
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from acme_responders import DnsServer, Http01Responder, TlsAlpnResponder
from certforge.common.acme import (
    ErrorType,
    b64url,
    dns01_txt_value,
    key_authorization,
)
from certforge.common.contracts.commands import ValidateChallenge
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory, create_engine, session_factory
from certforge.common.db.tables import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeOrder,
)
from certforge.common.outbox import enqueue
from harness import Backends
from issuance_kit import Enrollment, enroll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

WAIT_SECONDS = 20


def name(prefix: str = "host") -> str:
    """A fresh name under `.test` (the DNS server answers 127.0.0.1 for it)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}.test"


@dataclass
class Order:
    id: UUID
    account_id: UUID
    thumbprint: str
    authorizations: list[UUID]


@dataclass
class Acme:
    """Writes ACME rows for one enrollment and sends validation commands."""

    sessions: SessionFactory
    subjects: Subjects
    enrollment: Enrollment
    validator: Any

    async def order(self, *identifiers: tuple[str, str, bool]) -> Order:
        """An account and a pending order with one pending authorization per
        `(type, value, wildcard)`."""
        now = datetime.now(UTC)
        thumbprint = b64url(secrets.token_bytes(32))
        app_id, profile_id = UUID(self.enrollment.app_id), UUID(self.enrollment.profile_id)
        account = AcmeAccount(
            application_id=app_id,
            profile_id=profile_id,
            jwk={"kty": "EC"},
            jwk_thumbprint=thumbprint,
        )
        order = AcmeOrder(
            account_id=account.id,
            application_id=app_id,
            profile_id=profile_id,
            identifiers=[
                {"type": kind, "value": f"*.{value}" if wildcard else value}
                for kind, value, wildcard in identifiers
            ],
            expires_at=now + timedelta(days=7),
        )
        authorizations = [
            AcmeAuthorization(
                order_id=order.id,
                account_id=account.id,
                identifier_type=kind,
                identifier_value=value,
                wildcard=wildcard,
                expires_at=now + timedelta(days=7),
            )
            for kind, value, wildcard in identifiers
        ]
        async with self.sessions() as session, session.begin():
            session.add(account)
            await session.flush()
            session.add(order)
            await session.flush()
            session.add_all(authorizations)
        return Order(order.id, account.id, thumbprint, [a.id for a in authorizations])

    async def challenge(self, authorization_id: UUID, kind: str) -> tuple[UUID, str]:
        """A challenge of `kind` already moved to `processing` (as the client's POST does);
        its id and token."""
        token = b64url(secrets.token_bytes(32))
        row = AcmeChallenge(
            authorization_id=authorization_id, type=kind, token=token, status="processing"
        )
        async with self.sessions() as session, session.begin():
            session.add(row)
        return row.id, token

    async def send(self, challenge_id: UUID) -> None:
        """The validate command through the outbox, then the relay woken."""
        command = ValidateChallenge(
            challenge_id=challenge_id, application_id=UUID(self.enrollment.app_id)
        )
        async with self.sessions() as session, session.begin():
            enqueue(
                session,
                self.subjects.validate_challenge,
                CloudEvent.wrap(command, source="/certforge/api", subject=str(challenge_id)),
            )
        self.validator.wake_relay()

    async def decided(self, challenge_id: UUID) -> dict[str, Any]:
        """The challenge row once it is no longer `processing`."""
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            row = await self.row(AcmeChallenge, challenge_id)
            if row["status"] != "processing":
                return row
            assert asyncio.get_running_loop().time() < deadline, f"undecided: {row}"
            await asyncio.sleep(0.05)

    async def row(self, table: Any, row_id: UUID) -> dict[str, Any]:
        async with self.sessions() as session:
            found = await session.get(table, row_id, populate_existing=True)
            assert found is not None
            return dict(found.model_dump())

    async def validate(
        self, kind: str, identifier: str, *, identifier_type: str = "dns", wildcard: bool = False
    ) -> tuple[Order, UUID, str, str]:
        """A one-identifier order and a processing challenge of `kind`; returns the order, the
        challenge id, its token and its key authorization. Nothing is sent yet."""
        order = await self.order((identifier_type, identifier, wildcard))
        challenge_id, token = await self.challenge(order.authorizations[0], kind)
        return order, challenge_id, token, key_authorization(token, order.thumbprint)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(backends: Backends) -> AsyncIterator[AsyncEngine]:
    made = create_engine(backends.database_url, pool_size=2)
    yield made
    await made.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def acme(
    admin: Any, validator: Any, engine: AsyncEngine, backends: Backends
) -> AsyncIterator[Acme]:
    enrollment = await enroll(admin)
    yield Acme(session_factory(engine), Subjects(backends.namespace), enrollment, validator)


@pytest_asyncio.fixture(loop_scope="session")
async def events(backends: Backends, acme: Acme) -> AsyncIterator[list[dict[str, Any]]]:
    """Every `acme.challenge.validated` event of the enrollment's application, as it arrives."""
    client = await nats.connect(backends.nats_url)
    received: list[dict[str, Any]] = []

    async def keep(msg: Any) -> None:
        received.append(json.loads(msg.data))

    subject = acme.subjects.event(acme.enrollment.app, "acme.challenge.validated")
    await client.subscribe(subject, cb=keep)
    await client.flush()
    yield received
    await client.close()


async def settled(acme: Acme, backends: Backends) -> None:
    """Wait until every command sent so far was published and handled by the validator."""
    client = await nats.connect(backends.nats_url)
    js = client.jetstream()
    durable = acme.subjects.durable("validator")
    try:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            async with acme.sessions() as session:
                conn = await session.connection()
                unsent = (await conn.execute(_UNSENT)).scalar_one()
            info = await js.consumer_info(acme.subjects.validation_stream, durable)
            if not unsent and not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the validator did not settle")
    finally:
        await client.close()


_UNSENT = text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")


async def events_of(events: list[dict[str, Any]], challenge_id: UUID) -> list[dict[str, Any]]:
    """The events received about `challenge_id`, once there is at least one."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        mine = [e for e in events if e["data"]["challenge_id"] == str(challenge_id)]
        if mine or asyncio.get_running_loop().time() > deadline:
            return mine
        await asyncio.sleep(0.05)


def problem_type(row: dict[str, Any]) -> str:
    assert row["error"] is not None, row
    return str(row["error"]["type"]).rsplit(":", 1)[-1]


# --- http-01 ------------------------------------------------------------------------------------


async def test_http01_valid_makes_the_authorization_valid_and_the_order_ready(
    acme: Acme, http01_responder: Http01Responder, events: list[dict[str, Any]]
) -> None:
    host = name("www")
    order, challenge_id, token, key_authz = await acme.validate("http-01", host)
    http01_responder.serve(token, key_authz + "\r\n\t ")  # trailing whitespace is stripped
    await acme.send(challenge_id)

    challenge = await acme.decided(challenge_id)
    assert challenge["status"] == "valid", challenge
    assert challenge["error"] is None
    assert challenge["validated_at"] is not None
    assert challenge["attempts"] == 1
    assert (await acme.row(AcmeAuthorization, order.authorizations[0]))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"
    assert http01_responder.hosts_asked_for(token) == [host]  # Host = the identifier, port 80

    [event] = await events_of(events, challenge_id)
    assert event["type"] == "io.certforge.acme.challenge_validated.v1"
    assert event["data"] == {
        "challenge_id": str(challenge_id),
        "authorization_id": str(order.authorizations[0]),
        "order_id": str(order.id),
        "application_id": acme.enrollment.app_id,
        "application": acme.enrollment.app,
        "type": "http-01",
        "identifier": host,
        "status": "valid",
    }


async def test_http01_wrong_key_authorization_is_incorrect_response_and_invalidates_the_order(
    acme: Acme, http01_responder: Http01Responder, events: list[dict[str, Any]]
) -> None:
    host = name()
    order, challenge_id, token, key_authz = await acme.validate("http-01", host)
    http01_responder.serve(token, key_authz + "x")
    await acme.send(challenge_id)

    challenge = await acme.decided(challenge_id)
    assert challenge["status"] == "invalid"
    assert problem_type(challenge) == "incorrectResponse"
    detail = challenge["error"]["detail"]
    assert token in detail, detail
    assert "does not match" in detail, detail
    assert challenge["validated_at"] is None
    assert challenge["error"]["identifier"] == {"type": "dns", "value": host}
    assert (await acme.row(AcmeAuthorization, order.authorizations[0]))["status"] == "invalid"
    stored = await acme.row(AcmeOrder, order.id)
    assert stored["status"] == "invalid"
    assert stored["error"] == challenge["error"]

    mine = await events_of(events, challenge_id)
    assert mine[0]["data"]["status"] == "invalid"
    assert mine[0]["data"]["error"] == challenge["error"]


async def test_http01_not_found_is_unauthorized(
    acme: Acme, http01_responder: Http01Responder
) -> None:
    _, challenge_id, _, _ = await acme.validate("http-01", name())
    await acme.send(challenge_id)  # nothing served: 404
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "unauthorized"
    assert challenge["error"]["status"] == 403
    assert "404" in challenge["error"]["detail"]


async def test_http01_connection_refused_is_retried_then_connection(
    acme: Acme, acme_dns: DnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certforge.validator.checks")
    host = name("down")
    acme_dns.set_a(host, ["127.0.0.2"])  # loopback, but no responder listens there
    _, challenge_id, _, _ = await acme.validate("http-01", host)
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "connection"
    assert "127.0.0.2" in challenge["error"]["detail"]
    assert challenge["attempts"] == 1  # one verdict, after the retries
    retried = [r for r in caplog.records if host in r.getMessage() and "again" in r.getMessage()]
    assert len(retried) == 1  # the session validator retries once


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"], ids=["ok/ipv4", "ok/ipv6"])
async def test_http01_ip_identifier(
    acme: Acme, http01_responder: Http01Responder, address: str
) -> None:
    order, challenge_id, token, key_authz = await acme.validate(
        "http-01", address, identifier_type="ip"
    )
    http01_responder.serve(token, key_authz)
    await acme.send(challenge_id)
    assert (await acme.decided(challenge_id))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"
    shown = f"[{address}]" if ":" in address else address
    assert http01_responder.hosts_asked_for(token) == [shown]


async def test_http01_follows_redirects_on_the_allowed_port(
    acme: Acme, http01_responder: Http01Responder
) -> None:
    first, second = name("old"), name("new")
    _, challenge_id, token, key_authz = await acme.validate("http-01", first)
    port = http01_responder.port
    http01_responder.redirect(token, f"http://{second}:{port}/moved/{token}")
    http01_responder.redirect(f"/moved/{token}", f"/final/{token}", status=301)  # relative
    http01_responder.respond(f"/final/{token}", 200, key_authz.encode())
    await acme.send(challenge_id)
    assert (await acme.decided(challenge_id))["status"] == "valid"
    assert http01_responder.hosts_asked_for(token) == [first]
    assert http01_responder.hosts_asked_for(f"/final/{token}") == [f"{second}:{port}"]


@pytest.mark.parametrize(
    ("location", "detail"),
    [
        ("http://{host}:1/x", "may target port"),
        ("ftp://{host}/x", "not to http or https"),
        ("https:///x", "names no host"),
    ],
    ids=["fail/port", "fail/scheme", "fail/no-host"],
)
async def test_http01_refuses_redirects_outside_the_rules(
    acme: Acme, http01_responder: Http01Responder, location: str, detail: str
) -> None:
    host = name()
    _, challenge_id, token, _ = await acme.validate("http-01", host)
    http01_responder.redirect(token, location.format(host=host))
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "connection"
    assert detail in challenge["error"]["detail"], challenge["error"]


async def test_http01_stops_after_ten_redirects(
    acme: Acme, http01_responder: Http01Responder
) -> None:
    _, challenge_id, token, _ = await acme.validate("http-01", name())
    http01_responder.redirect(token, f"/loop/{token}/0")
    for hop in range(12):
        http01_responder.redirect(f"/loop/{token}/{hop}", f"/loop/{token}/{hop + 1}")
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "connection"
    assert "Too many redirects" in challenge["error"]["detail"]
    asked = [p for p, _ in http01_responder.requests if p.startswith(f"/loop/{token}/")]
    assert len(asked) == 10  # the identifier's URL and ten redirects


async def test_http01_large_body_is_incorrect_response(
    acme: Acme, http01_responder: Http01Responder
) -> None:
    _, challenge_id, token, _ = await acme.validate("http-01", name())
    http01_responder.respond(f"/.well-known/acme-challenge/{token}", 200, b"x" * 100_000)
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "incorrectResponse"
    assert "larger than 8192 bytes" in challenge["error"]["detail"]


# --- dns-01 -------------------------------------------------------------------------------------


async def test_dns01_valid_among_other_records(acme: Acme, acme_dns: DnsServer) -> None:
    host = name()
    order, challenge_id, _, key_authz = await acme.validate("dns-01", host)
    acme_dns.set_txt(f"_acme-challenge.{host}", ["stale-value", dns01_txt_value(key_authz)])
    await acme.send(challenge_id)
    assert (await acme.decided(challenge_id))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"


async def test_dns01_wildcard_is_proven_at_its_base_domain(acme: Acme, acme_dns: DnsServer) -> None:
    base = name("wild")
    order, challenge_id, _, key_authz = await acme.validate("dns-01", base, wildcard=True)
    acme_dns.set_txt(f"_acme-challenge.{base}", [dns01_txt_value(key_authz)])
    await acme.send(challenge_id)
    assert (await acme.decided(challenge_id))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"


@pytest.mark.parametrize(
    ("case", "error", "detail"),
    [
        ("no-txt", ErrorType.UNAUTHORIZED, "No TXT record found at _acme-challenge."),
        ("nxdomain", ErrorType.DNS, "NXDOMAIN looking up TXT for _acme-challenge."),
        ("wrong", ErrorType.INCORRECT_RESPONSE, 'found "not-it"'),
    ],
    ids=["fail/no-txt", "fail/nxdomain", "fail/wrong-value"],
)
async def test_dns01_failures_are_told_apart(
    acme: Acme, acme_dns: DnsServer, case: str, error: ErrorType, detail: str
) -> None:
    host = name()
    if case == "nxdomain":
        acme_dns.set_nxdomain(f"_acme-challenge.{host}")
    elif case == "wrong":
        acme_dns.set_txt(f"_acme-challenge.{host}", ["not-it"])
    order, challenge_id, _, _ = await acme.validate("dns-01", host)
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == error.value
    assert detail in challenge["error"]["detail"], challenge["error"]
    assert (await acme.row(AcmeOrder, order.id))["status"] == "invalid"


# --- tls-alpn-01 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "kind"),
    [("DNS", "dns"), ("127.0.0.1", "ip"), ("::1", "ip")],
    ids=["ok/dns", "ok/ipv4", "ok/ipv6"],
)
async def test_tls_alpn01_valid(
    acme: Acme, tls_alpn_responder: TlsAlpnResponder, identifier: str, kind: str
) -> None:
    value = name("tls") if identifier == "DNS" else identifier
    order, challenge_id, _, key_authz = await acme.validate(
        "tls-alpn-01", value, identifier_type=kind
    )
    tls_alpn_responder.serve(value, key_authz)
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert challenge["status"] == "valid", challenge
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"


@pytest.mark.parametrize(
    ("fault", "error", "detail"),
    [
        ({"alpn": ["http/1.1"]}, ErrorType.TLS, "did not negotiate ALPN acme-tls/1"),
        ({"with_extension": False}, ErrorType.INCORRECT_RESPONSE, "no acmeIdentifier"),
        ({"critical": False}, ErrorType.INCORRECT_RESPONSE, "not marked critical"),
        ({"digest": b"\x00" * 32}, ErrorType.INCORRECT_RESPONSE, "SHA-256 digest"),
        ({"extra_sans": ("other.test",)}, ErrorType.INCORRECT_RESPONSE, "exactly"),
        ({"wrong_key_authz": True}, ErrorType.INCORRECT_RESPONSE, "SHA-256 digest"),
    ],
    ids=[
        "fail/wrong-alpn",
        "fail/no-acme-identifier",
        "fail/not-critical",
        "fail/wrong-digest",
        "fail/two-sans",
        "fail/other-key-authorization",
    ],
)
async def test_tls_alpn01_refuses_faulty_answers(
    acme: Acme,
    tls_alpn_responder: TlsAlpnResponder,
    fault: dict[str, Any],
    error: ErrorType,
    detail: str,
) -> None:
    host = name("tls")
    order, challenge_id, _, key_authz = await acme.validate("tls-alpn-01", host)
    if fault.pop("wrong_key_authz", False):
        key_authz += "x"
    tls_alpn_responder.serve(host, key_authz, **fault)
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == error.value, challenge["error"]
    assert detail in challenge["error"]["detail"], challenge["error"]
    assert (await acme.row(AcmeOrder, order.id))["status"] == "invalid"


async def test_tls_alpn01_unknown_name_is_a_tls_error(acme: Acme) -> None:
    _, challenge_id, _, _ = await acme.validate("tls-alpn-01", name("unserved"))
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "tls"
    assert "unserved-" in challenge["error"]["detail"]  # the server name sent


async def test_tls_alpn01_connection_refused(acme: Acme, acme_dns: DnsServer) -> None:
    host = name("down")
    acme_dns.set_a(host, ["127.0.0.2"])
    _, challenge_id, _, _ = await acme.validate("tls-alpn-01", host)
    await acme.send(challenge_id)
    challenge = await acme.decided(challenge_id)
    assert problem_type(challenge) == "connection"


# --- the verdict ---------------------------------------------------------------------------------


async def test_the_order_is_ready_only_when_every_authorization_is_valid(
    acme: Acme, http01_responder: Http01Responder, acme_dns: DnsServer
) -> None:
    first, second = name("a"), name("b")
    order = await acme.order(("dns", first, False), ("dns", second, False))
    one, token_one = await acme.challenge(order.authorizations[0], "http-01")
    two, _ = await acme.challenge(order.authorizations[1], "dns-01")
    http01_responder.serve(token_one, key_authorization(token_one, order.thumbprint))
    await acme.send(one)
    assert (await acme.decided(one))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "pending"

    two_token = (await acme.row(AcmeChallenge, two))["token"]
    acme_dns.set_txt(
        f"_acme-challenge.{second}",
        [dns01_txt_value(key_authorization(two_token, order.thumbprint))],
    )
    await acme.send(two)
    assert (await acme.decided(two))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"


async def test_two_authorizations_validated_at_once_make_the_order_ready(
    acme: Acme, http01_responder: Http01Responder
) -> None:
    order = await acme.order(*(("dns", name(f"c{i}"), False) for i in range(4)))
    challenges = []
    for authorization in order.authorizations:
        challenge_id, token = await acme.challenge(authorization, "http-01")
        http01_responder.serve(token, key_authorization(token, order.thumbprint))
        challenges.append(challenge_id)
    await asyncio.gather(*(acme.send(c) for c in challenges))
    for challenge_id in challenges:
        assert (await acme.decided(challenge_id))["status"] == "valid"
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"


async def test_a_redelivered_command_changes_nothing(
    acme: Acme,
    backends: Backends,
    http01_responder: Http01Responder,
    events: list[dict[str, Any]],
) -> None:
    order, challenge_id, token, key_authz = await acme.validate("http-01", name())
    http01_responder.serve(token, key_authz)
    await acme.send(challenge_id)
    decided = await acme.decided(challenge_id)
    await settled(acme, backends)
    http01_responder.withdraw(token)  # a second check would now fail

    await acme.send(challenge_id)  # the same command again (another message id)
    await settled(acme, backends)
    await asyncio.sleep(0.2)  # an event, if one were sent, reaches the subscriber
    assert await acme.row(AcmeChallenge, challenge_id) == decided
    assert (await acme.row(AcmeOrder, order.id))["status"] == "ready"
    assert len(http01_responder.hosts_asked_for(token)) == 1
    assert len([e for e in events if e["data"]["challenge_id"] == str(challenge_id)]) == 1


async def test_a_command_for_an_unknown_challenge_is_dropped(
    acme: Acme, backends: Backends
) -> None:
    await acme.send(uuid.uuid4())
    await settled(acme, backends)  # acknowledged, not redelivered forever


async def test_an_unreadable_command_is_dropped(acme: Acme, backends: Backends) -> None:
    client = await nats.connect(backends.nats_url)
    try:
        await client.jetstream().publish(acme.subjects.validate_challenge, b'{"not": "a command"}')
    finally:
        await client.close()
    await settled(acme, backends)  # terminated, not redelivered
