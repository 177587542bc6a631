"""The key pool generates its keys in separate processes: a refill under way never holds up
issuance on the issuer's event loop."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from certforge.common.crypto.keys import load_private_key_der
from certforge.common.db.tables import PooledKey
from certforge.common.domain import KeyAlgorithm
from certforge.devstack.process import pid_alive
from certforge.issuer.keypool import KeyPool, KeyPoolSettings
from issuance_kit import enroll, issue
from keygen_gate import gated_key_der

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# a type no other test pools (the session's issuer pools RSA-2048, test_key_pool RSA-3072);
# cheap to generate, and the mechanism is the same for every type
ALGORITHM = KeyAlgorithm.EC_P384


async def test_issuance_proceeds_while_a_refill_runs(
    admin: httpx.AsyncClient, api_app: Any, tmp_path: Path
) -> None:
    context = api_app.state.certforge
    gate = tmp_path / "open"
    pool = KeyPool(
        context.sessions,
        context.leaf_keys,
        KeyPoolSettings(algorithms=[ALGORITHM], size=1),
        generate=functools.partial(gated_key_der, str(gate)),
    )
    refill = asyncio.create_task(pool.refill())
    try:
        pid_file = Path(f"{gate}.pid")
        deadline = asyncio.get_running_loop().time() + 60
        while not await asyncio.to_thread(
            pid_file.exists
        ):  # the key process has started and is holding the refill
            assert asyncio.get_running_loop().time() < deadline, "no key process started"
            assert not refill.done(), refill
            await asyncio.sleep(0.05)
        assert int(await asyncio.to_thread(pid_file.read_text)) != os.getpid()

        e = await enroll(admin)
        issued = await issue(
            admin,
            e,
            common_name="during-refill.example.com",
            sans=[{"type": "dns", "value": "during-refill.example.com"}],
        )
        assert issued["certificate"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")
        assert not refill.done(), "the refill should still be waiting at the gate"

        gate.touch()
        assert await refill == 1
        async with context.sessions() as session:
            rows = list(
                (
                    await session.exec(
                        sa.select(PooledKey).where(col(PooledKey.key_algorithm) == ALGORITHM)
                    )
                ).scalars()
            )
        assert len(rows) == 1
        key = load_private_key_der(
            context.leaf_keys.decrypt(rows[0].encrypted_key, rows[0].id.bytes)
        )
        assert key.public_key() is not None
    finally:
        gate.touch()
        pool.close()
        if not refill.done():
            refill.cancel()
        async with context.sessions() as session, session.begin():
            await session.exec(
                sa.delete(PooledKey).where(col(PooledKey.key_algorithm) == ALGORITHM)
            )


_PARENT = """
import multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
from certforge.issuer.keygen import exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent, initargs=(os.getpid(),),
    )
    print(pool.submit(os.getpid).result(), flush=True)
    sys.stdin.read()  # until killed
"""


async def test_a_key_process_leaves_with_its_killed_issuer(tmp_path: Path) -> None:
    """SIGKILL of the issuer (here a process starting key processes as the pool does) must not
    leave its key process behind."""
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    child = int((await asyncio.wait_for(parent.stdout.readline(), timeout=60)).decode())
    assert pid_alive(child)
    parent.kill()
    await parent.wait()
    for _ in range(100):
        if not pid_alive(child):
            return
        await asyncio.sleep(0.1)
    os.kill(child, 9)
    raise AssertionError("the key process outlived its killed issuer")
