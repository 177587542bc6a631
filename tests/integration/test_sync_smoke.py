from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from issuance_kit import enroll, issue

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _until(check: Any, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_directory_sync_follows_the_lineage(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    r = await admin.post(f"/api/v1/applications/{e.app}/syncs", json={
        "name": "dir", "kind": "directory", "settings": {"path": str(tmp_path)},
        "options": {"name_template": "{common_name}-{certificate_id}"}})
    assert r.status_code == 201, r.text
    sync = r.json()
    first = await issue(admin, e, common_name="web.example.com",
                        sans=[{"type": "dns", "value": "web.example.com"}])
    folder = tmp_path / f"web.example.com-{first['certificate']['id']}"
    await _until(lambda: (folder / "key.pem").exists())
    assert (folder / "cert.pem").read_text() == first["certificate"]["certificate"]
    assert oct((folder / "key.pem").stat().st_mode & 0o777) == "0o600"

    r = await admin.post(f"{e.certificates}/{first['certificate']['id']}/renew",
                         headers={"Prefer": "wait=10"}, json={})
    second = r.json()["certificate"]
    await _until(lambda: (folder / "cert.pem").read_text() == second["certificate"])

    states = (await admin.get(f"/api/v1/applications/{e.app}/syncs/{sync['id']}/certificates")).json()
    assert len(states) == 1
    assert states[0]["status"] == "succeeded"
    assert states[0]["certificate_id"] == second["id"]

    await admin.post(f"{e.certificates}/{second['id']}/revoke", json={"reason": "superseded"})
    await _until(lambda: not folder.exists())
