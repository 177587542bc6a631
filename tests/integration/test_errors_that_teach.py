"""The errors a new user meets first say what to do, and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from admin_kit import API, every, problem, uid
from issuance_kit import enroll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _applications(admin: httpx.AsyncClient) -> list[Any]:
    return await every(admin, f"{API}/applications")


async def test_a_form_body_is_told_to_be_json(admin: httpx.AsyncClient) -> None:
    """`curl -d` without `-H "Content-Type: application/json"` sends a form."""
    before = await _applications(admin)
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        body = problem(
            await admin.post(
                f"{API}/applications",
                content=b'{"slug": "' + uid().encode() + b'", "name": "y"}',
                headers={"Content-Type": content_type},
            ),
            415,
        )
        assert body["type"] == "urn:certforge:problem:unsupported-media-type"
        assert "Content-Type: application/json" in body["detail"]
        assert content_type in body["detail"]
    assert await _applications(admin) == before


async def test_malformed_json_names_line_and_column(admin: httpx.AsyncClient) -> None:
    before = await _applications(admin)
    body = problem(
        await admin.post(
            f"{API}/applications",
            content=b'{\n  "slug": "x",\n  "name": \n}',
            headers={"Content-Type": "application/json"},
        ),
        400,
        "body",
    )
    assert body["detail"].startswith("not valid JSON at line 4, column 1: "), body
    assert [e["field"] for e in body["errors"]] == ["body"]
    assert await _applications(admin) == before


async def test_request_fields_are_explained(admin: httpx.AsyncClient) -> None:
    e = await enroll(admin)
    validity = problem(
        await admin.post(e.requests, json=e.body(common_name="a.example.com", validity="30d")),
        422,
        "validity",
    )
    assert validity["errors"][0]["message"] == "unknown field; did you mean `ttl`?"
    san = problem(
        await admin.post(e.requests, json=e.body(sans=["www.example.com"])), 422, "sans.0"
    )
    assert '{"type": "dns", "value": "www.example.com"}' in san["errors"][0]["message"]
    listed = await admin.get(e.requests)
    assert listed.status_code == 200
    assert listed.json()["items"] == []
