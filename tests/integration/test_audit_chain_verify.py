"""The audit log's hash chain in PostgreSQL: sealed by the renewer's loop, verified over REST, and
an altered or removed row named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio

from admin_kit import API, create_application, create_identity, ok, put_member
from harness import Backends
from issuance_kit import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

VERIFY = f"{API}/audit-events/verification"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sealer(backends: Backends) -> AsyncIterator[Any]:
    """The renewer's sealing loop, one pass at a time."""
    from certforge.common.db.pool import LazyPool
    from certforge.renewer.audit_seal import AuditSealer

    database = LazyPool(backends.database_url, max_size=2)
    yield AuditSealer(database, timedelta(seconds=2), timedelta(hours=1))
    await database.close()


async def _seal(sealer: Any) -> int:
    sealed: int = await sealer.seal(whole_log=True)
    return sealed


async def test_the_chain_holds_and_an_altered_row_is_named(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any, sealer: Any
) -> None:
    app = await create_application(admin)
    auditor = await create_identity(admin)
    await put_member(admin, app["slug"], auditor["id"], "auditor")
    await _seal(sealer)
    await admin.patch(f"{API}/applications/{app['slug']}", json={"description": "changed"})
    assert await _seal(sealer) >= 1

    whole = ok(await admin.get(VERIFY))
    assert whole["broken"] is None
    assert whole["unsealed"] == 0
    assert whole["verified"] >= 3
    assert whole["head"]["seq"] == whole["verified"]
    mine = ok(await client_for(auditor["token"]).get(VERIFY, params={"application": app["slug"]}))
    assert mine["broken"] is None
    assert mine["verified"] >= 2

    db = api_app.state.certforge.db
    target = await db.fetchval(
        "SELECT max(id) FROM audit_events WHERE application_id = $1 AND action = $2",
        UUID(app["id"]),
        "application.member.put",
    )
    name = await db.fetchval("SELECT actor_name FROM audit_events WHERE id = $1", target)
    await db.execute("UPDATE audit_events SET actor_name = 'someone else' WHERE id = $1", target)
    auditor_client = client_for(auditor["token"])
    try:
        for client, params in ((admin, {}), (auditor_client, {"application": app["slug"]})):
            broken = ok(await client.get(VERIFY, params=params))["broken"]
            assert broken is not None
            assert broken["event_id"] == target
            assert broken["reason"] == "the entry was altered after it was sealed"
    finally:
        await db.execute("UPDATE audit_events SET actor_name = $2 WHERE id = $1", target, name)


async def test_a_removed_row_is_named_by_the_sequence(
    admin: httpx.AsyncClient, api_app: Any, sealer: Any
) -> None:
    await create_application(admin)
    await _seal(sealer)
    db = api_app.state.certforge.db
    seq = await db.fetchval("SELECT seq FROM audit_chain ORDER BY seq DESC LIMIT 1 OFFSET 1")
    saved = await db.fetchrow("SELECT * FROM audit_chain WHERE seq = $1", seq)
    await db.execute("DELETE FROM audit_chain WHERE seq = $1", seq)
    try:
        broken = ok(await admin.get(VERIFY))["broken"]
        assert broken["seq"] == seq + 1
        assert "entries removed" in broken["reason"]
    finally:
        await db.execute("INSERT INTO audit_chain VALUES ($1, $2, $3, $4, $5, $6)", *saved.values())
    assert ok(await admin.get(VERIFY))["broken"] is None


async def test_who_may_verify(admin: httpx.AsyncClient, client_for: ClientFor) -> None:
    app, other = await create_application(admin), await create_application(admin)
    operator = await create_identity(admin)
    await put_member(admin, app["slug"], operator["id"], "operator")
    client = client_for(operator["token"])
    assert (await client.get(VERIFY)).status_code == 403
    assert (await client.get(VERIFY, params={"application": app["slug"]})).status_code == 403
    assert (await client.get(VERIFY, params={"application": other["slug"]})).status_code == 404
