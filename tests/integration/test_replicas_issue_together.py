"""Two api replicas and two issuer replicas on one database and one NATS namespace issue
correctly together under concurrent load (issue 17): managed keys and CSRs, every request with
an Idempotency-Key, some sent again on the other replica while the first is still in flight.
No duplicate certificate, no lost request, every answer the same request."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func
from sqlmodel import col, select

from acme_kit import csr_der
from admin_kit import ClientFor
from certforge.common.db.tables import Certificate, CertificateRequest
from issuance_kit import Enrollment, enroll, member, poll_until_done
from replica_kit import api_replica

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REQUESTS = 120
"""Distinct logical requests (Idempotency-Keys); a quarter of them are sent twice."""
CONCURRENCY = 16
WAIT = {"Prefer": "wait=30"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replica(api_app: Any, second_issuer: object) -> AsyncIterator[tuple[Any, ClientFor]]:
    async with api_replica() as replica:
        yield replica


def _body(enrollment: Enrollment, i: int) -> dict[str, Any]:
    name = f"r{i}.example.com"
    if i % 3 == 0:
        der, _ = csr_der([name], common_name=name)
        pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()
        return enrollment.body(method="csr", csr=pem)
    return enrollment.body(common_name=name, sans=[{"type": "dns", "value": name}])


async def _send(
    client: httpx.AsyncClient, enrollment: Enrollment, key: str, body: dict[str, Any]
) -> dict[str, Any]:
    r = await client.post(
        enrollment.requests, headers={**WAIT, "Idempotency-Key": key}, json=body, timeout=60
    )
    assert r.status_code in (201, 202), r.text
    answer: dict[str, Any] = r.json()
    if answer["status"] == "pending":  # a replayed key answers at once with the request's state
        answer = await poll_until_done(client, r.headers["location"], seconds=60)
    assert answer["status"] == "issued", answer
    return answer


async def _both_issuers_pull(api_app: Any) -> None:
    """Both issuer replicas wait on the shared durable consumer (two pending pull requests)."""
    context = api_app.state.certforge
    js = context.nats.jetstream()
    for _ in range(100):
        info = await js.consumer_info(
            context.subjects.commands_stream, context.subjects.durable("issuer")
        )
        if (info.num_waiting or 0) >= 2:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{info.num_waiting} issuer replica(s) pulling, not 2")


async def test_two_api_and_two_issuer_replicas_issue_each_request_once(
    admin: httpx.AsyncClient,
    client_for: ClientFor,
    replica: tuple[Any, ClientFor],
    api_app: Any,
) -> None:
    await _both_issuers_pull(api_app)
    enrollment = await enroll(admin)
    on_a = await member(admin, client_for, enrollment.app, "operator")
    token = on_a.headers["authorization"].removeprefix("Bearer ")
    on_b = replica[1](token)
    replicas = (on_a, on_b)
    rng = random.Random(17)
    sends: list[tuple[int, int, str, dict[str, Any]]] = []
    for i in range(REQUESTS):
        key, body = f"replicas-{enrollment.app}-{i}", _body(enrollment, i)
        sends.append((i, i % 2, key, body))
        if i % 4 == 0:  # the same request again, on the other replica
            sends.append((i, 1 - i % 2, key, body))
    rng.shuffle(sends)

    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int, which: int, key: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with gate:
            return i, await _send(replicas[which], enrollment, key, body)

    answers = await asyncio.gather(*(one(*s) for s in sends))

    by_request: dict[int, set[tuple[str, str]]] = {}
    for i, answer in answers:
        by_request.setdefault(i, set()).add((answer["id"], answer["certificate"]["id"]))
    assert len(by_request) == REQUESTS
    assert all(len(seen) == 1 for seen in by_request.values()), "a key answered two requests"
    request_ids = {UUID(next(iter(seen))[0]) for seen in by_request.values()}
    assert len(request_ids) == REQUESTS

    async with api_app.state.certforge.sessions() as session:
        app_id = UUID(enrollment.app_id)
        stored = await session.exec(
            select(CertificateRequest.id, CertificateRequest.status).where(
                CertificateRequest.application_id == app_id
            )
        )
        assert {(rid, status) for rid, status in stored} == {(rid, "issued") for rid in request_ids}
        per_request = await session.exec(
            select(Certificate.request_id, func.count())
            .where(Certificate.application_id == app_id)
            .group_by(col(Certificate.request_id))
        )
        counts = dict(per_request.all())
        assert set(counts) == request_ids, "a request without its certificate, or a stray one"
        assert set(counts.values()) == {1}, "a request with two certificates"
