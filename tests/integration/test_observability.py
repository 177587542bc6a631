"""Observability: one trace from the API call to the issuer's log line, and metrics scraped.

Both services run in this process (the API app and the real issuer worker of the session);
their log records are formatted by the production JSON formatter as they are emitted, inside
the spans, exactly as the services write them to stdout.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from certforge.common.logs import JsonFormatter
from certforge.common.runtime import health_app
from issuance_kit import enroll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_one_trace_from_api_call_to_issuer_log(
    admin: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    e = await enroll(admin)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    r = await admin.post(
        e.requests,
        headers={"Prefer": "wait=10", "traceparent": traceparent},
        json=e.body(
            common_name="traced.example.com", sans=[{"type": "dns", "value": "traced.example.com"}]
        ),
    )
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    lines = [orjson.loads(line) for line in json_log.getvalue().splitlines()]
    issued = [
        line
        for line in lines
        if line["message"] == "certificate issued" and line.get("request_id") == request_id
    ]
    assert issued, "the issuer logged no 'certificate issued' line for the request"
    assert issued[0]["trace_id"] == trace_id
    assert issued[0]["logger"] == "certforge.issuer.issuing"


async def test_metrics_after_issuing(admin: httpx.AsyncClient, issuer: Any) -> None:
    e = await enroll(admin)
    r = await admin.post(
        e.requests,
        headers={"Prefer": "wait=10"},
        json=e.body(common_name="m.example.com", sans=[{"type": "dns", "value": "m.example.com"}]),
    )
    assert r.status_code == 201, r.text
    # the worker's own endpoint, as Prometheus scrapes it on CERTFORGE_HEALTH_PORT
    transport = httpx.ASGITransport(app=health_app(issuer.ready))
    async with httpx.AsyncClient(transport=transport, base_url="http://issuer") as worker:
        text = (await worker.get("/metrics")).text
    assert "certforge_issuance_latency_seconds_bucket" in text
    count = [
        line
        for line in text.splitlines()
        if line.startswith('certforge_issuance_latency_seconds_count{kind="issue"}')
    ]
    assert count
    assert float(count[0].split()[-1]) >= 1
    assert (
        'certforge_certificates_issued_total{key_algorithm="EC_P256",kind="issue",method="managed"}'
        in text
    )
    assert "certforge_outbox_backlog" in text
    api_text = (await admin.get("/metrics")).text
    assert (
        'certforge_http_requests_total{method="POST",'
        'route="/api/v1/applications/{app}/certificate-requests",status="201"}' in api_text
    )
