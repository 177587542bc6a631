"""The sync option `include_trust_bundle` (issue 18): a destination receives the issuing CA's
trust bundle with each certificate, and receives it again as soon as a root rollover adds the
new root, before anything is issued under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from admin_kit import API, ok
from issuance_kit import enroll, issue, pem_blocks
from lifecycle_kit import eventually
from syncs_kit import create_sync, wait_status

pytestmark = pytest.mark.integration


async def test_the_trust_bundle_is_pushed_with_the_certificate_and_after_a_rollover(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    sync = await create_sync(
        admin,
        e.app,
        "directory",
        {"path": str(tmp_path)},
        options={"include_trust_bundle": True},
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    without = await create_sync(admin, e.app, "directory", {"path": str(plain)})
    made = (await issue(admin, e, common_name="bundle.example.com"))["certificate"]
    state = await wait_status(admin, e.app, sync["id"], made["id"], "succeeded")
    folder = Path(state["external_id"])
    assert pem_blocks((folder / "trust-bundle.pem").read_text()) == pem_blocks(
        e.root["certificate"]
    )
    other = await wait_status(admin, e.app, without["id"], made["id"], "succeeded")
    assert not (Path(other["external_id"]) / "trust-bundle.pem").exists()

    new_root = ok(
        await admin.post(f"{API}/cas/{e.root['id']}/rekey", json={"validity": "12y"}), 201
    )
    expected = pem_blocks(e.root["certificate"] + new_root["certificate"])
    served = (await anonymous.get(f"{API}/cas/{e.issuing['id']}/bundle")).text
    assert pem_blocks(served) == expected

    async def both_roots() -> bool:
        return pem_blocks((folder / "trust-bundle.pem").read_text()) == expected

    await eventually(both_roots, what="the destination holds the old and the new root")
    assert (folder / "cert.pem").read_text() == made["certificate"]
