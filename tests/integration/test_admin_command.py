"""`certforge-admin` as an operator runs it: a separate process configured by the same
variables as the issuer, against the session's running system."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from certforge.common.crypto.envelope import KeyRing
from certforge.issuer.admin.backup import read_manifest
from harness import Backends
from issuance_kit import enroll

pytestmark = pytest.mark.integration

COMMAND = str(Path(sys.executable).with_name("certforge-admin"))


async def _run(backends: Backends, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **backends.env()}
    return await asyncio.to_thread(
        subprocess.run,
        [COMMAND, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_status_backup_and_a_refused_restore(
    backends: Backends, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    await enroll(admin)  # CAs and their keys exist
    status = await _run(backends, "keys", "status")
    assert status.returncode == 0, status.stderr
    assert "ca ring: everything is sealed under test-ca" in status.stdout
    assert "certificate_authorities.encrypted_private_key: test-ca=" in status.stdout

    made_key = await _run(backends, "keys", "new", "leaf-2027")
    assert made_key.returncode == 0, made_key.stderr
    assert KeyRing.parse(made_key.stdout.strip()).kids == ("leaf-2027",)
    bad_kid = await _run(backends, "keys", "new", "no spaces")
    assert bad_kid.returncode == 1
    assert "kid" in bad_kid.stderr

    archive = tmp_path / "session.backup"
    made = await _run(backends, "backup", str(archive))
    assert made.returncode == 0, made.stderr
    manifest = read_manifest(archive)
    assert manifest.namespace == backends.namespace
    assert manifest.rows["certificate_authorities"] >= 2

    # Restoring over the live database is refused, and says why.
    refused = await _run(backends, "restore", str(archive))
    assert refused.returncode == 1
    assert "not empty" in refused.stderr
    missing = await _run(backends, "restore", str(tmp_path / "absent.backup"))
    assert missing.returncode == 1
    assert "absent.backup" in missing.stderr
