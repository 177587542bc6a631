"""Issue 17: OCSP answers signed ahead and served from each api replica's memory, yet `revoked`
on EVERY replica from the moment the revoking call returns; HTTP caching of the answers.

Two api apps run in this process against the same PostgreSQL and NATS, as two replicas would:
one revokes, the other (which had the `good` answer in memory) answers `revoked` right after.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

import httpx
import nats
import orjson
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from admin_kit import ClientFor, ok
from certforge.api.replicas import Replicas
from certforge.common.contracts.subjects import Subjects
from harness import Backends
from issuance_kit import Enrollment, enroll, issue, member
from lifecycle_kit import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OCSP_RESPONSE = "application/ocsp-response"


@dataclass
class Pki:
    enrollment: Enrollment
    operator: httpx.AsyncClient
    issuing: x509.Certificate

    @property
    def ca_id(self) -> str:
        return str(self.enrollment.issuing["id"])

    async def leaf(self, name: str) -> tuple[x509.Certificate, str]:
        body = await issue(self.operator, self.enrollment, common_name=f"{name}.example.com")
        cert = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
        return cert, body["certificate"]["id"]

    def get_path(self, leaf: x509.Certificate) -> str:
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf, self.issuing, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        return f"/ocsp/{self.ca_id}/{urllib.parse.quote(base64.b64encode(der).decode(), safe='')}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pki(admin: httpx.AsyncClient, client_for: ClientFor) -> Pki:
    enrollment = await enroll(admin)
    operator = await member(admin, client_for, enrollment.app, "operator")
    issuing = x509.load_pem_x509_certificate(enrollment.issuing["certificate"].encode())
    return Pki(enrollment, operator, issuing)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def second_replica(api_app: Any, env_for: None) -> AsyncIterator[Any]:
    """A second api app on the same database and NATS namespace: another replica."""
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    app = create_app(ApiSettings.load())
    async with app.router.lifespan_context(app):
        yield app


def _replicas(app: Any) -> Replicas:
    replicas: Replicas = app.state.certforge.ocsp.replicas
    return replicas


def _status(content: bytes) -> ocsp.OCSPCertStatus:
    response = ocsp.load_der_ocsp_response(content)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return response.certificate_status


async def test_revoked_on_every_replica_once_the_call_returns(
    api_app: Any, second_replica: Any, pki: Pki
) -> None:
    first, second = _replicas(api_app), _replicas(second_replica)

    async def both_ready() -> bool:
        return (
            first.may_serve_from_memory()
            and second.may_serve_from_memory()
            and second.id in first.members()
            and first.id in second.members()
        )

    await eventually(both_ready, what="the two replicas serve from memory and know each other")
    leaf, certificate_id = await pki.leaf("replicas")
    path = pki.get_path(leaf)
    transport = httpx.ASGITransport(app=second_replica)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica-2") as other:
        answers = [await other.get(path) for _ in range(3)]
        assert all(_status(a.content) is ocsp.OCSPCertStatus.GOOD for a in answers)
        # Signed once, then served as the same bytes (a live ECDSA signature differs each time).
        assert len({a.content for a in answers}) == 1
        key = (UUID(pki.ca_id), leaf.serial_number)
        memory = second_replica.state.certforge.ocsp.memory
        assert memory.get(key, datetime.now(UTC)) is not None, "the good answer is in memory"

        url = f"{pki.enrollment.certificates}/{certificate_id}/revoke"
        ok(await pki.operator.post(url, json={"reason": "keyCompromise"}))
        # Right after the revoking call returned on the first replica:
        revoked = await other.get(path)
        assert _status(revoked.content) is ocsp.OCSPCertStatus.REVOKED
        response = ocsp.load_der_ocsp_response(revoked.content)
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
        assert revoked.headers["etag"] != answers[0].headers["etag"]
    here = await pki.operator.get(path)
    assert _status(here.content) is ocsp.OCSPCertStatus.REVOKED
    assert here.content == revoked.content, "both replicas serve the one stored revoked answer"


async def test_caching_headers_and_conditional_requests(
    pki: Pki, anonymous: httpx.AsyncClient, api_app: Any
) -> None:
    leaf, _ = await pki.leaf("caching")
    path = pki.get_path(leaf)
    r = await anonymous.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == OCSP_RESPONSE
    assert _status(r.content) is ocsp.OCSPCertStatus.GOOD
    response = ocsp.load_der_ocsp_response(r.content)
    validity = api_app.state.certforge.settings.ocsp_response_validity_seconds
    cache_control = [d.strip() for d in r.headers["cache-control"].split(",")]
    assert "public" in cache_control, cache_control
    assert "no-transform" in cache_control, cache_control
    max_age = int(next(d for d in cache_control if d.startswith("max-age="))[8:])
    assert 0 < max_age <= validity
    assert response.next_update_utc is not None
    assert max_age <= (response.next_update_utc - datetime.now(UTC)).total_seconds() + 1
    assert parsedate_to_datetime(r.headers["last-modified"]) == response.this_update_utc
    assert parsedate_to_datetime(r.headers["expires"]) == response.next_update_utc
    etag = r.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')

    not_modified = await anonymous.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    since = await anonymous.get(path, headers={"If-Modified-Since": r.headers["last-modified"]})
    assert since.status_code == 304
    changed = await anonymous.get(path, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200
    assert changed.content == r.content

    # POST: the same bytes and validators, but never 304 (RFC 9110: GET and HEAD only).
    body = base64.b64decode(urllib.parse.unquote(path.rsplit("/", 1)[1]))
    posted = await anonymous.post(
        f"/ocsp/{pki.ca_id}",
        content=body,
        headers={"Content-Type": "application/ocsp-request", "If-None-Match": etag},
    )
    assert posted.status_code == 200
    assert posted.content == r.content
    assert posted.headers["etag"] == etag
    assert "public" in posted.headers["cache-control"]


async def test_a_silent_replica_is_waited_out(
    backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica that stops answering (cut off from NATS) is waited for until its lease has run
    out, after which it no longer serves from memory; the revoking call then returns."""
    connection = await nats.connect(backends.nats_url)
    subjects = Subjects(f"{backends.namespace}-silent")
    forgotten: list[bytes] = []
    replicas = Replicas(connection, subjects, forgotten.append, heartbeat=0.05, lease=0.3)
    try:
        await replicas.start()
        await eventually(
            lambda: _true(replicas.may_serve_from_memory()), what="serving from memory"
        )
        await connection.publish(subjects.api_heartbeat, b"a-replica-that-went-silent")
        await eventually(lambda: _true("a-replica-that-went-silent" in replicas.members()))
        with caplog.at_level(logging.WARNING, logger="certforge.api.replicas"):
            await replicas.forget_everywhere(b"ca:1")
        assert forgotten[0] == b"ca:1"
        assert "a-replica-that-went-silent" in caplog.text
        assert "a-replica-that-went-silent" not in replicas.members()
    finally:
        await replicas.stop()
        await connection.close()


async def _true(value: bool) -> bool:
    return value


async def test_the_revoked_event_also_makes_replicas_forget(
    second_replica: Any, pki: Pki, backends: Backends
) -> None:
    """The fallback for a revoking replica that could not reach the others directly: the
    `certificate.revoked` event its transaction committed (published by the outbox)."""
    leaf, _ = await pki.leaf("event-fallback")
    transport = httpx.ASGITransport(app=second_replica)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica-2") as other:
        assert _status((await other.get(pki.get_path(leaf))).content) is ocsp.OCSPCertStatus.GOOD
    memory = second_replica.state.certforge.ocsp.memory
    key = (UUID(pki.ca_id), leaf.serial_number)

    async def remembered() -> bool:
        return memory.get(key, datetime.now(UTC)) is not None

    await eventually(remembered, what="the good answer in the second replica's memory")
    connection = await nats.connect(backends.nats_url)
    try:
        event = {"data": {"ca_id": pki.ca_id, "serial_number": format(leaf.serial_number, "x")}}
        subject = Subjects(backends.namespace).event(pki.enrollment.app, "certificate.revoked")
        await connection.publish(subject, orjson.dumps(event))
        await connection.flush()
    finally:
        await connection.close()

    async def forgotten() -> bool:
        return memory.get(key, datetime.now(UTC)) is None

    await eventually(forgotten, what="the second replica forgot the answer")


def _counted(text: str, method: str, route: str, status: int) -> float:
    prefix = f'certforge_http_requests_total{{method="{method}",route="{route}",status="{status}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def test_answers_from_memory_are_counted_under_the_routes_templates(
    pki: Pki, anonymous: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """The fast path answers without the app's middleware, yet a dashboard sees one OCSP and
    CRL rate: its answers are counted under the same route templates as the app's."""
    leaf, _ = await pki.leaf("counted")
    path = pki.get_path(leaf)
    crl = f"/api/v1/cas/{pki.ca_id}/crl"
    assert (await anonymous.get(path)).status_code == 200  # the app signs and remembers
    assert (await anonymous.get(crl)).status_code == 200
    ocsp_route, crl_route = "/ocsp/{ca_id}/{encoded:path}", "/api/v1/cas/{ca_id}/crl"
    before = (await admin.get("/metrics")).text
    for _ in range(3):
        assert (await anonymous.get(path)).status_code == 200
        assert (await anonymous.get(crl)).status_code == 200
    after = (await admin.get("/metrics")).text
    assert _counted(after, "GET", ocsp_route, 200) - _counted(before, "GET", ocsp_route, 200) == 3
    assert _counted(after, "GET", crl_route, 200) - _counted(before, "GET", crl_route, 200) == 3
