"""A push and a revocation of the same certificate crossing in the syncer (found by the fault
suite: a push redelivered after a syncer was killed, or running beside the revocation's removal,
left a revoked certificate at its destination):

- a push task for a certificate already revoked never pushes;
- a push that completes after the revocation queues the removal again;
- a removal that found nothing to remove does not erase what such a push recorded;
- a push redelivered after the revocation, whose earlier delivery wrote to the destination but
  never recorded it (the database failing over under it, found by tests/scale), queues the
  removal again.

The tasks are run through the syncer's own `SyncTasks` (beside the session's real syncer, which
carries out the removal queued) with a directory destination.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from harness import Backends
from issuance_kit import enroll, issue
from syncs_kit import create_sync, eventually, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tasks(backends: Backends, env_for: None) -> AsyncIterator[Any]:
    from certforge.common.contracts.subjects import Subjects
    from certforge.common.crypto.envelope import KeyRing
    from certforge.common.db.engine import create_engine, session_factory
    from certforge.syncer.settings import SyncSettings
    from certforge.syncer.tasks import SyncTasks

    engine = create_engine(backends.database_url, pool_size=2)
    yield SyncTasks(
        session_factory(engine),
        KeyRing.parse(backends.leaf_keks),
        Subjects(backends.namespace),
        SyncSettings(),
        development=True,
        after_commit=lambda: None,
    )
    await engine.dispose()


def _message(task: Any, delivery: int = 1) -> Any:
    """What the consumer hands `SyncTasks`: the envelope's bytes and the delivery count."""
    return SimpleNamespace(
        data=orjson.dumps({"data": task.model_dump(mode="json")}),
        metadata=SimpleNamespace(num_delivered=delivery),
        headers={},
    )


async def _revoked_lineage(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> tuple[Any, dict[str, Any], dict[str, Any], Path]:
    from certforge.common.contracts.commands import SyncCertificate

    enrollment = await enroll(admin)
    sync = await create_sync(admin, enrollment.app, "directory", {"path": str(tmp_path)})
    cert = (await issue(admin, enrollment, common_name="race.example.com"))["certificate"]
    pushed = await wait_state(
        admin, enrollment.app, sync["id"], lambda s: s["status"] == "succeeded"
    )
    folder = Path(pushed["external_id"])
    assert await asyncio.to_thread((folder / "cert.pem").exists)
    r = await admin.post(
        f"{enrollment.certificates}/{cert['id']}/revoke", json={"reason": "superseded"}
    )
    assert r.status_code == 200, r.text
    await wait_state(admin, enrollment.app, sync["id"], lambda s: s["status"] == "removed")
    assert not await asyncio.to_thread(folder.exists)
    push = SyncCertificate(
        sync_id=sync["id"], lineage_id=cert["id"], certificate_id=cert["id"],
        application_id=enrollment.app_id, action="push", reason="issued",
    )  # fmt: skip
    return push, sync, {"app": enrollment.app, **cert}, folder


async def test_a_late_push_of_a_revoked_certificate_does_not_push(
    admin: httpx.AsyncClient, syncer: Any, tasks: Any, tmp_path: Path
) -> None:
    push, sync, cert, folder = await _revoked_lineage(admin, syncer, tmp_path)
    await tasks._carry_out(_message(push))
    assert not folder.exists()
    state = await wait_state(admin, cert["app"], sync["id"], lambda s: True)
    assert state["status"] == "removed"


async def test_a_push_finishing_after_the_revocation_queues_the_removal_again(
    admin: httpx.AsyncClient, syncer: Any, tasks: Any, tmp_path: Path
) -> None:
    push, sync, cert, folder = await _revoked_lineage(admin, syncer, tmp_path)
    # The push that was running when the revocation came: it wrote the folder again…
    folder.mkdir()
    (folder / "cert.pem").write_text("the certificate, pushed again\n")
    loaded = await tasks._load(push)
    # …and a removal beside it found nothing recorded to remove: it must not erase the push's
    # record, which the push writes now.
    await tasks._record(loaded, push, "succeeded", external_id=str(folder))
    removal = push.model_copy(update={"action": "remove"})
    await tasks._record(loaded, removal, "removed", external_id=None)
    # the push saw the revocation and queued the removal; the real syncer carries it out
    await eventually(lambda: not folder.exists(), what="the folder removed again")
    state = await wait_state(admin, cert["app"], sync["id"], lambda s: s["status"] == "removed")
    assert state["external_id"] == str(folder)


async def test_a_redelivered_push_of_a_revoked_certificate_removes_what_it_wrote(
    admin: httpx.AsyncClient, syncer: Any, tasks: Any, tmp_path: Path
) -> None:
    push, sync, cert, folder = await _revoked_lineage(admin, syncer, tmp_path)
    # The first delivery wrote the folder after the revocation's removal had run, then could
    # not record it (its database connection died) and was redelivered.
    folder.mkdir()
    (folder / "cert.pem").write_text("the certificate, pushed by the first delivery\n")
    await tasks._carry_out(_message(push, delivery=2))
    await eventually(lambda: not folder.exists(), what="the folder removed again")
    state = await wait_state(admin, cert["app"], sync["id"], lambda s: s["status"] == "removed")
    assert state["status"] == "removed"


async def test_a_redelivered_push_of_a_renewed_certificate_pushes_the_renewal_again(
    admin: httpx.AsyncClient, syncer: Any, tasks: Any, tmp_path: Path
) -> None:
    """Out of order: the replaced certificate's first delivery wrote it over the renewal's files
    and died unrecorded; its redelivery must put the renewal back, not leave the old one."""
    from certforge.common.contracts.commands import SyncCertificate

    enrollment = await enroll(admin)
    sync = await create_sync(admin, enrollment.app, "directory", {"path": str(tmp_path)})
    old = (await issue(admin, enrollment, common_name="order.example.com"))["certificate"]
    pushed = await wait_state(
        admin, enrollment.app, sync["id"], lambda s: s["status"] == "succeeded"
    )
    folder = Path(pushed["external_id"])
    r = await admin.post(
        f"{enrollment.certificates}/{old['id']}/renew", headers={"Prefer": "wait=10"}, json={}
    )
    assert r.status_code == 201, r.text
    new = r.json()["certificate"]
    await wait_state(admin, enrollment.app, sync["id"], lambda s: s["certificate_id"] == new["id"])
    await eventually(
        lambda: (folder / "cert.pem").read_text() == new["certificate"], what="the renewal pushed"
    )
    (folder / "cert.pem").write_text(old["certificate"])  # the late first delivery's write
    push = SyncCertificate(
        sync_id=sync["id"], lineage_id=old["id"], certificate_id=old["id"],
        application_id=enrollment.app_id, action="push", reason="issued",
    )  # fmt: skip
    await tasks._carry_out(_message(push, delivery=2))
    await eventually(
        lambda: (folder / "cert.pem").read_text() == new["certificate"],
        what="the renewal pushed again over the late write",
    )
