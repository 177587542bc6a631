"""Key-encryption key rotation and backup/restore timings (issue 18), standalone (not part of
`make bench`): how long `certforge-admin keys rewrap` takes per envelope, and how long a backup
and a restore of the same database take.

On a database of its own (created on the PostgreSQL of `CERTFORGE_DATABASE_URL`, default
127.0.0.1:5432, and dropped at the end): `N` pooled EC P-256 keys sealed under an old leaf key
(the cheapest table to fill; every sealed column costs the same per envelope: one GCM open, one
GCM seal, one row update), then `rewrap_all` under a ring whose first key is new, then
`backup` to a temporary file and `restore` into a second empty database.

    .venv/bin/python bench/kek_rotation.py [N]      # default 20000
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import generate_private_key, private_key_to_der
from certforge.common.db.migrations import upgrade
from certforge.common.db.pool import open_pool
from certforge.common.db.sealed import Ring
from certforge.common.domain import KeyAlgorithm
from certforge.devstack import create_database, drop_database
from certforge.issuer.admin.backup import backup, restore
from certforge.issuer.admin.rotation import rewrap_all

SERVER = os.environ.get("CERTFORGE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def main(n: int) -> None:
    old = KeyRing.generate_text("old")
    new = KeyRing.generate_text("new")
    source_name, target_name = (
        f"cf_bench_kek_{secrets.token_hex(3)}",
        f"cf_bench_rst_{secrets.token_hex(3)}",
    )
    source = await create_database(SERVER, source_name)
    target = await create_database(SERVER, target_name)
    try:
        await asyncio.to_thread(upgrade, source)
        ring = KeyRing.parse(old)
        der = private_key_to_der(generate_private_key(KeyAlgorithm.EC_P256))
        rows = []
        for _ in range(n):
            row_id = uuid4()
            rows.append(
                (row_id, KeyAlgorithm.EC_P256.value, ring.encrypt(der, row_id.bytes), "old")
            )
        pool = await open_pool(source, max_size=1)
        try:
            await pool.executemany(
                "INSERT INTO key_pool (id, key_algorithm, encrypted_key, key_kek_id, created_at) "
                "VALUES ($1, $2, $3, $4, now())",
                rows,
            )
            rings = {
                Ring.CA: KeyRing.parse(f"{new},{old}"),
                Ring.LEAF: KeyRing.parse(f"{new},{old}"),
            }
            async with pool.acquire() as conn:
                start = time.perf_counter()
                report = await rewrap_all(conn, rings)
                rewrap_s = time.perf_counter() - start
        finally:
            await pool.close()
        assert report.total == n, report
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "bench.backup"
            start = time.perf_counter()
            await backup(source, "certforge", archive)
            backup_s = time.perf_counter() - start
            size = archive.stat().st_size
            start = time.perf_counter()
            await restore(archive, target, "certforge", rings)
            restore_s = time.perf_counter() - start
        print(f"rewrap: {n} envelopes in {rewrap_s:.2f} s = {n / rewrap_s:,.0f} envelopes/s")
        print(f"backup: {backup_s:.2f} s ({size / 1e6:.1f} MB)")
        print(f"restore: {restore_s:.2f} s")
    finally:
        await drop_database(SERVER, source_name)
        await drop_database(SERVER, target_name)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
