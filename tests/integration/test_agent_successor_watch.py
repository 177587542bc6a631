"""The renewal watch `GET …/certificates/{id}/successor` on the real stack (api + issuer).

A long-poll answers within moments of the issuer's renewal, not at the end of its wait; an old
certificate gets its lineage's newest at once; the wait holds no database connection; tenants
stay apart; bad `wait` values are 422 naming `wait`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from admin_kit import ClientFor, problem
from issuance_kit import WAIT, enroll, issue, member
from lifecycle_kit import certificate_row, eventually, set_certificate

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def successor_url(app: str, certificate_id: str, wait: int | str | None = None) -> str:
    url = f"/api/v1/applications/{app}/certificates/{certificate_id}/successor"
    return url if wait is None else f"{url}?wait={wait}"


async def renew(client: httpx.AsyncClient, app: str, certificate_id: str) -> str:
    r = await client.post(
        f"/api/v1/applications/{app}/certificates/{certificate_id}/renew", headers=WAIT
    )
    assert r.status_code == 201, r.text
    new_id: str = r.json()["certificate"]["id"]
    return new_id


async def test_long_poll_answers_on_renewal(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    e = await enroll(admin)
    auditor = await member(admin, client_for, e.app, "auditor")
    first = (await issue(admin, e, common_name="watch.example.com"))["certificate"]["id"]

    r = await auditor.get(successor_url(e.app, first))
    assert r.status_code == 204, r.text
    assert r.content == b""

    started = time.monotonic()
    poll = asyncio.create_task(auditor.get(successor_url(e.app, first, 30), timeout=40))
    watch = api_app.state.certforge.successors

    async def registered() -> bool:
        return bool(watch.waiting)

    await eventually(registered, 10, "the long-poll's waiter")
    # While it waits, the caller holds no database connection: the pool is all idle.
    pool = api_app.state.certforge.db
    assert pool.get_idle_size() == pool.get_size()
    second = await renew(admin, e.app, first)
    answer = await asyncio.wait_for(poll, 40)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == second
    assert body["renewed_from_id"] == first
    assert body["status"] == "active"
    assert elapsed < 10, f"answered {elapsed:.1f}s after asking: woken by the event, not the wait"
    assert watch.waiting == 0

    # Two renewals later the first certificate's holder gets the newest at once.
    third = await renew(admin, e.app, second)
    for held in (first, second):
        r = await auditor.get(successor_url(e.app, held, 30))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == third
    r = await auditor.get(successor_url(e.app, third))
    assert r.status_code == 204

    # The newest is the one nothing renewed, not the one created last: creation times have
    # whole seconds, and renewals land in the same second as their predecessor.
    first_row = await certificate_row(api_app, first)
    await set_certificate(api_app, third, created_at=first_row.created_at - timedelta(days=1))
    r = await auditor.get(successor_url(e.app, first))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == third


async def test_wait_ends_with_204(admin: httpx.AsyncClient) -> None:
    e = await enroll(admin)
    held = (await issue(admin, e, common_name="quiet.example.com"))["certificate"]["id"]
    started = time.monotonic()
    r = await admin.get(successor_url(e.app, held, 1))
    assert r.status_code == 204, r.text
    assert 0.9 <= time.monotonic() - started < 5


async def test_other_application_sees_nothing(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    e = await enroll(admin)
    other = await enroll(admin)
    stranger = await member(admin, client_for, other.app, "operator")
    held = (await issue(admin, e, common_name="mine.example.com"))["certificate"]["id"]
    problem(await stranger.get(successor_url(e.app, held, 1)), 404, "app")
    # The certificate is not found under the stranger's own application either.
    problem(await stranger.get(successor_url(other.app, held)), 404, "certificate_id")


@pytest.mark.parametrize(
    "wait", ["61", "-1", "soon"], ids=["fail/too-long", "fail/negative", "fail/not-a-number"]
)
async def test_bad_wait_is_422(admin: httpx.AsyncClient, wait: str) -> None:
    e = await enroll(admin)
    held = (await issue(admin, e, common_name="bad.example.com"))["certificate"]["id"]
    problem(await admin.get(successor_url(e.app, held, wait)), 422, "wait")


async def test_bad_certificate_id_is_422(admin: httpx.AsyncClient) -> None:
    e = await enroll(admin)
    problem(await admin.get(successor_url(e.app, "not-an-id")), 422, "certificate_id")
