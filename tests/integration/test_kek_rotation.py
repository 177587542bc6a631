"""Key-encryption key rotation on a running system (issue 18): every envelope of both key rings
is re-sealed under the new key id while certificates keep being issued, the old key id opens
what is not re-sealed yet, and afterwards a system holding only the new keys reads everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from admin_kit import API, ok
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.pool import open_pool
from certforge.common.db.sealed import SEALED_COLUMNS, Ring
from certforge.issuer.admin.rotation import kids_in_use, rewrap_all
from harness import Backends
from issuance_kit import Enrollment, enroll, issue
from system_kit import a_system, drop, new_place

pytestmark = pytest.mark.integration

CA_OLD = KeyRing.generate_text("ca-old")
CA_NEW = KeyRing.generate_text("ca-new")
LEAF_OLD = KeyRing.generate_text("leaf-old")
LEAF_NEW = KeyRing.generate_text("leaf-new")


def _managed(e: Enrollment, host: str) -> dict[str, Any]:
    return {"method": "managed", "common_name": host, "key_algorithm": "EC_P256", "ttl": "30d"}


async def _key_of(admin: httpx.AsyncClient, e: Enrollment, certificate_id: str) -> str:
    r = await admin.get(f"{e.certificates}/{certificate_id}/private-key")
    assert r.status_code == 200, r.text
    return r.text


async def _opened_with(database_url: str, ca_keks: str, leaf_keks: str) -> int:
    """Open every envelope in the database with these rings (raises if one does not open)."""
    rings = {Ring.CA: KeyRing.parse(ca_keks), Ring.LEAF: KeyRing.parse(leaf_keks)}
    opened = 0
    pool = await open_pool(database_url, max_size=1)
    try:
        for column in SEALED_COLUMNS:
            rows = await pool.fetch(
                f"SELECT {column.id_column} AS id, {column.column} AS blob FROM {column.table} "
                f"WHERE {column.column} IS NOT NULL"
            )
            for row in rows:
                rings[column.ring].decrypt(row["blob"], column.aad(row["id"]))
                opened += 1
    finally:
        await pool.close()
    return opened


async def test_rewrap_under_load_then_only_the_new_keys_open_everything(
    backends: Backends, env_for: None
) -> None:
    place = await new_place(backends)
    try:
        # Before: everything sealed under the old keys.
        async with a_system(place, ca_keks=CA_OLD, leaf_keks=LEAF_OLD) as old:
            e = await enroll(old.admin)
            before = [
                await issue(old.admin, e, **_managed(e, f"b{i}.example.com")) for i in range(5)
            ]
            ok(
                await old.admin.post(
                    f"{API}/applications/{e.app}/syncs",
                    json={
                        "name": "hook",
                        "kind": "webhook",
                        "settings": {"url": "https://hooks.example.com/x"},
                        "credentials": {"hmac_secret": "s3cret-value-of-enough-length"},
                    },
                ),
                201,
            )
        # The services roll out with the new key first and the old one still in the ring.
        async with a_system(
            place, ca_keks=f"{CA_NEW},{CA_OLD}", leaf_keks=f"{LEAF_NEW},{LEAF_OLD}"
        ) as both:
            issued: list[dict[str, Any]] = []
            stop = asyncio.Event()

            async def keep_issuing() -> None:
                n = 0
                while not stop.is_set():
                    issued.append(await issue(both.admin, e, **_managed(e, f"l{n}.example.com")))
                    n += 1

            load = asyncio.create_task(keep_issuing())
            pool = await open_pool(place.database_url, max_size=1)
            try:
                async with pool.acquire() as conn:
                    await asyncio.sleep(0.3)  # issuance under way before the run starts
                    # Half-way: the CA ring is rotated, the leaf ring not yet.
                    ca_report = await rewrap_all(
                        conn, {Ring.CA: KeyRing.parse(f"{CA_NEW},{CA_OLD}")}, batch_size=2
                    )
                    midway = await kids_in_use(conn)
                    assert "leaf-old" in midway["certificates.encrypted_private_key"], midway
                    # What is still under the old kid opens, and the CAs sign under the new one.
                    key = await _key_of(both.admin, e, before[0]["certificate_id"])
                    assert key == before[0]["certificate"]["private_key"]
                    await issue(both.admin, e, **_managed(e, "midway.example.com"))
                    leaf_report = await rewrap_all(
                        conn, {Ring.LEAF: KeyRing.parse(f"{LEAF_NEW},{LEAF_OLD}")}, batch_size=2
                    )
                    stop.set()
                    await load
                    usage = await kids_in_use(conn)
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await load
                await pool.close()
            assert issued, "nothing was issued during the rotation"
            assert ca_report.rewrapped == {"certificate_authorities.encrypted_private_key": 2}
            assert leaf_report.rewrapped["certificates.encrypted_private_key"] >= 5
            assert leaf_report.rewrapped["sync_destinations.encrypted_credentials"] == 1
            for column, kids in usage.items():
                assert set(kids) <= {"ca-new", "leaf-new"}, (column, kids)
            assert usage["certificates.encrypted_private_key"] == {"leaf-new": 6 + len(issued)}
        # The old keys are dropped: everything still opens and the CAs still sign.
        async with a_system(place, ca_keks=CA_NEW, leaf_keks=LEAF_NEW) as new:
            for made in before + issued[:3]:
                key = await _key_of(new.admin, e, made["certificate_id"])
                assert key == made["certificate"]["private_key"]
            after = await issue(new.admin, e, **_managed(e, "after.example.com"))
            assert after["certificate"]["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert await _opened_with(place.database_url, CA_NEW, LEAF_NEW) >= 8 + len(issued)
    finally:
        await drop(place)
