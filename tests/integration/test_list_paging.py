"""Issue 18: every list endpoint pages with the one convention certificate requests set:
`limit` and `cursor` in, `{"items", "next_cursor"}` out, newest first, no item twice or missed
when walked a page at a time, and a bad `limit` or `cursor` is a problem naming it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from admin_kit import (
    API,
    create_application,
    create_identity,
    create_policy,
    create_profile,
    create_root,
    every,
    ok,
    problem,
    put_member,
)
from alerts_kit import alerts_url, create_alert
from certforge.common.db.tables import SyncState
from syncs_kit import create_sync, syncs_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _walk(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """All items, two per page; asserts the shape of every page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = ok(
            await client.get(url, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        )
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _key(item: dict[str, Any]) -> str:
    return str(item.get("id") or item.get("identity_id") or item.get("lineage_id"))


async def _check(client: httpx.AsyncClient, url: str, made: list[str]) -> None:
    """`made` (ids, oldest first) come newest first, each once, and the walk equals one
    big page."""
    walked = await _walk(client, url)
    ids = [_key(i) for i in walked]
    assert len(ids) == len(set(ids)), f"{url}: an item twice"
    assert {_key(i) for i in await every(client, url)} == set(ids)
    positions = [ids.index(m) for m in made]
    assert positions == sorted(positions, reverse=True), f"{url}: not newest first"
    # As on certificate requests: a limit out of range is 422, a cursor not ours 400.
    problem(await client.get(url, params={"limit": "0"}), 422, "limit")
    problem(await client.get(url, params={"limit": "501"}), 422, "limit")
    problem(await client.get(url, params={"cursor": "not-a-cursor"}), 400, "cursor")


Make = Callable[[], Awaitable[str]]


async def test_global_lists(admin: httpx.AsyncClient) -> None:
    root = await create_root(admin)
    policy = await create_policy(admin)

    async def ca() -> str:
        return str((await create_root(admin))["id"])

    async def identity() -> str:
        return str((await create_identity(admin))["id"])

    async def a_policy() -> str:
        return str((await create_policy(admin))["id"])

    async def profile() -> str:
        return str((await create_profile(admin, root["id"], policy["id"]))["id"])

    async def application() -> str:
        return str((await create_application(admin))["id"])

    lists: dict[str, Make] = {
        "/cas": ca,
        "/identities": identity,
        "/policies": a_policy,
        "/profiles": profile,
        "/applications": application,
    }
    for path, make in lists.items():
        made = [await make() for _ in range(3)]
        await _check(admin, API + path, made)


async def test_application_lists(admin: httpx.AsyncClient, api_app: Any, tmp_path: Path) -> None:
    app = (await create_application(admin))["slug"]
    members = []
    for _ in range(3):
        identity = await create_identity(admin)
        await put_member(admin, app, identity["id"], "operator")
        members.append(str(identity["id"]))
    await _check(admin, f"{API}/applications/{app}/members", members)

    syncs = [
        str((await create_sync(admin, app, "directory", {"path": str(tmp_path)}))["id"])
        for _ in range(3)
    ]
    await _check(admin, syncs_url(app), syncs)

    slack = [{"type": "slack", "url": "https://hooks.slack.example/services/T0/B0/paging"}]
    alerts = [str((await create_alert(admin, app, "issued", slack))["id"]) for _ in range(3)]
    await _check(admin, alerts_url(app), alerts)

    # Sync states are the syncer's rows: written here as it writes them, a second apart.
    sync_id = UUID(syncs[0])
    lineages = [uuid4() for _ in range(3)]
    start = datetime.now(UTC) - timedelta(minutes=5)
    async with api_app.state.certforge.sessions() as session:
        for n, lineage in enumerate(lineages):
            session.add(
                SyncState(
                    sync_id=sync_id,
                    lineage_id=lineage,
                    certificate_id=uuid4(),
                    status="pending",
                    created_at=start + timedelta(seconds=n),
                    # a later retry of the oldest must not move it to the front
                    updated_at=start + timedelta(seconds=10 - n),
                )
            )
        await session.commit()
    await _check(admin, f"{syncs_url(app)}/{sync_id}/certificates", [str(x) for x in lineages])
