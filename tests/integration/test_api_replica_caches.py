"""Two api replicas (two app instances, each with its own pools, NATS connection and caches):
what one replica caches about tokens, roles and enrollments is dropped when the other commits a
change, within a second (issue 17)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, update
from sqlmodel import col, select

from admin_kit import API, ClientFor, create_identity, ok, put_member
from certforge.api.auth import hash_token
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import ConfigurationChanged
from certforge.common.db.tables import OutboxMessage, Profile
from issuance_kit import WAIT, Enrollment, enroll, issue
from replica_kit import api_replica

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SECOND = 1.0
"""The promise: a change made on one replica is enforced by every replica within this."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replica(api_app: Any) -> AsyncIterator[tuple[Any, ClientFor]]:
    async with api_replica() as replica:
        yield replica


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replica_b(replica: tuple[Any, ClientFor]) -> Any:
    return replica[0]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client_b(replica: tuple[Any, ClientFor]) -> ClientFor:
    return replica[1]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enrollment(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin)


async def within_a_second(check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `check()` holds; fails after `SECOND`."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < SECOND, "not enforced within a second"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def operator_on_b(
    admin: httpx.AsyncClient, client_b: ClientFor, replica_b: Any, enrollment: Enrollment
) -> tuple[dict[str, Any], httpx.AsyncClient]:
    """A new operator of `enrollment`'s application, as a client of replica B, once B has heard
    of the membership (or B could drop what the test makes it cache when the news arrives)."""
    cache = replica_b.state.certforge.access
    forgotten = cache.forgotten
    identity = await create_identity(admin)
    await put_member(admin, enrollment.app, identity["id"], "operator")

    async def heard() -> bool:
        return bool(cache.forgotten > forgotten)

    await within_a_second(heard)
    return identity, client_b(identity["token"])


async def test_a_token_revoked_on_one_replica_is_refused_by_the_other_within_a_second(
    admin: httpx.AsyncClient, client_b: ClientFor, replica_b: Any, enrollment: Enrollment
) -> None:
    identity, on_b = await operator_on_b(admin, client_b, replica_b, enrollment)
    ok(await on_b.get(enrollment.requests))
    ok(await on_b.get(enrollment.requests))
    cache = replica_b.state.certforge.access
    assert cache.actors.get(hash_token(identity["token"])) is not None, "B did not cache it"

    revoke = f"{API}/identities/{identity['id']}/tokens/{identity['token_id']}"
    assert (await admin.delete(revoke)).status_code == 204

    async def refused() -> bool:
        return (await on_b.get(enrollment.requests)).status_code == 401

    await within_a_second(refused)
    r = await on_b.get(enrollment.requests)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


async def test_a_removed_membership_and_a_weaker_role_apply_on_the_other_replica(
    admin: httpx.AsyncClient, client_b: ClientFor, replica_b: Any, enrollment: Enrollment
) -> None:
    identity, on_b = await operator_on_b(admin, client_b, replica_b, enrollment)
    await issue(on_b, enrollment, common_name="before.example.com")

    await put_member(admin, enrollment.app, identity["id"], "auditor")

    async def forbidden() -> bool:
        r = await on_b.post(enrollment.requests, json=enrollment.body(common_name="x.example.com"))
        return r.status_code == 403

    await within_a_second(forbidden)

    r = await admin.delete(f"{API}/applications/{enrollment.app}/members/{identity['id']}")
    assert r.status_code == 204

    async def hidden() -> bool:
        return (await on_b.get(enrollment.requests)).status_code == 404

    await within_a_second(hidden)


async def test_an_enrollment_turned_off_on_one_replica_refuses_requests_on_the_other(
    admin: httpx.AsyncClient, client_b: ClientFor, replica_b: Any, enrollment: Enrollment
) -> None:
    _, on_b = await operator_on_b(admin, client_b, replica_b, enrollment)
    await issue(on_b, enrollment, common_name="on.example.com")
    assert len(replica_b.state.certforge.access.targets) > 0, "B did not cache the target"
    api = f"{API}/applications/{enrollment.app}/profiles/{enrollment.profile}/enrollment/api"

    ok(await admin.put(api, json={"enabled": False}))

    async def refused() -> bool:
        r = await on_b.post(
            enrollment.requests, headers=WAIT, json=enrollment.body(common_name="off.example.com")
        )
        return r.status_code == 422

    try:
        await within_a_second(refused)
    finally:
        ok(await admin.put(api, json={"enabled": True}))

    async def issues_again() -> bool:
        r = await on_b.post(
            enrollment.requests, headers=WAIT, json=enrollment.body(common_name="on.example.com")
        )
        return r.status_code == 201

    await within_a_second(issues_again)


async def test_a_change_is_announced_once_and_a_read_announces_nothing(
    admin: httpx.AsyncClient, api_app: Any, enrollment: Enrollment
) -> None:
    async def announced() -> list[OutboxMessage]:
        async with api_app.state.certforge.sessions() as session:
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.subject == api_app.state.certforge.subjects.configuration_changed
                )
                .order_by(col(OutboxMessage.seq))
            )
            return list(await session.exec(query))

    before = len(await announced())
    ok(await admin.get(f"{API}/applications/{enrollment.app}"))
    ok(await admin.get(f"{API}/identities"))
    assert len(await announced()) == before

    identity = await create_identity(admin)  # a new identity and token: nothing cached about it
    assert len(await announced()) == before
    await put_member(admin, enrollment.app, identity["id"], "auditor")
    rows = await announced()
    assert len(rows) == before + 1
    event = CloudEvent[ConfigurationChanged].model_validate_json(rows[-1].payload)
    assert event.data.resources == ["membership"]


async def test_a_bulk_update_is_announced_and_a_rolled_back_change_is_not(
    api_app: Any, replica_b: Any, enrollment: Enrollment
) -> None:
    context = api_app.state.certforge
    subject = context.subjects.configuration_changed

    async def announced() -> int:
        async with context.sessions() as session:
            query = select(func.count()).where(OutboxMessage.subject == subject)
            return int((await session.exec(query)).one())

    before, forgotten_b = await announced(), replica_b.state.certforge.access.forgotten
    async with context.sessions() as session:
        profile = await session.get(Profile, UUID(enrollment.profile_id))
        assert profile is not None
        profile.description = "changed, then rolled back"
        await session.flush()
        await session.rollback()
    assert await announced() == before

    async with context.sessions() as session:
        await session.exec(
            update(Profile)
            .where(col(Profile.id) == UUID(enrollment.profile_id))
            .values(description="changed in bulk")
        )
        await session.commit()
    assert await announced() == before + 1

    async def b_forgot() -> bool:
        return bool(replica_b.state.certforge.access.forgotten > forgotten_b)

    await within_a_second(b_forgot)
