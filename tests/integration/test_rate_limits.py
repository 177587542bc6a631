"""Rate limits per identity: token buckets in PostgreSQL shared by replicas; 429, Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from admin_kit import create_identity, put_member
from harness import Backends
from issuance_kit import WAIT, Enrollment, enroll, issue, request_count

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LIMIT = 3


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replicas(backends: Backends, env_for: None, api_app: object) -> AsyncIterator[list[Any]]:
    """Two api replicas that allow LIMIT issuance requests a minute per identity."""
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    apps = [create_app(ApiSettings.load(issuance_requests_per_identity=LIMIT)) for _ in range(2)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        yield apps


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enrollment(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin)


def _client(app: Any, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://certforge.test",
        headers={"Authorization": f"Bearer {token}"},
    )


async def _operator(admin: httpx.AsyncClient, enrollment: Enrollment) -> str:
    identity = await create_identity(admin)
    await put_member(admin, enrollment.app, identity["id"], "operator")
    token: str = identity["token"]
    return token


async def test_issuance_is_limited_per_identity_across_replicas(
    admin: httpx.AsyncClient, api_app: Any, replicas: list[Any], enrollment: Enrollment
) -> None:
    token = await _operator(admin, enrollment)
    a, b = _client(replicas[0], token), _client(replicas[1], token)
    first = await issue(a, enrollment, common_name="one.example.com")
    await issue(b, enrollment, common_name="two.example.com")
    await issue(a, enrollment, common_name="three.example.com")
    before = await request_count(api_app, enrollment.app_id)

    refused = await b.post(
        enrollment.requests, headers=WAIT, json=enrollment.body(common_name="four.example.com")
    )
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:certforge:problem:rate-limited"
    # 3 a minute: one token every 20 s, most of which is still ahead
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    renew = await a.post(f"{enrollment.certificates}/{first['certificate']['id']}/renew")
    assert renew.status_code == 429
    assert await request_count(api_app, enrollment.app_id) == before  # changed nothing

    other = _client(replicas[1], await _operator(admin, enrollment))
    await issue(other, enrollment, common_name="other.example.com")  # its own bucket


async def test_a_refused_attempt_takes_no_token(replicas: list[Any], api_app: Any) -> None:
    """Hammering while limited does not push the next success further away."""
    from datetime import UTC, datetime, timedelta

    from certforge.api.rate_limits import Limit, take
    from certforge.common.errors import RateLimited

    db = api_app.state.certforge.db
    limit = Limit("test", 60)  # one a second
    now = datetime.now(UTC)
    key = f"hammer-{now.timestamp()}"
    for _ in range(60):
        await take(db, limit, key, now)
    for _ in range(20):
        with pytest.raises(RateLimited):
            await take(db, limit, key, now)
    await take(db, limit, key, now + timedelta(seconds=1))  # refilled exactly one
    with pytest.raises(RateLimited) as refused:
        await take(db, limit, key, now + timedelta(seconds=1))
    assert refused.value.retry_after == 1
