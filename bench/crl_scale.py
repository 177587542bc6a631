"""A CRL with 1,000,000 revoked entries, built, signed, stored and served (issue 17, "Scale").

Runs against a PostgreSQL server (default: the one on 127.0.0.1:5432 that CI and the test
fixtures use), in a database of its own that it drops afterwards. Seeds one EC P-256 CA with
`--revoked` revoked, unexpired certificates, then measures with the services' real code:

1. the issuer's `RevocationPublisher.refresh()` (query the revoked serials, build, sign and store
   the CRL: what a revocation triggers), wall time and the process's peak resident memory;
2. the api loading it into memory (`domain.crls.current`: one query for the newest number, one
   for the bytes) and serving it from memory (`revocation_http.crl_reply`), per request;
3. `openssl crl` parsing and verifying what was stored, as a relying party would.

    .venv/bin/python bench/crl_scale.py               # 1,000,000 entries
    .venv/bin/python bench/crl_scale.py --revoked 100000 --record

With --record the figures are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lifecycle import APP, PROFILE, _seed  # noqa: E402 - bench/ is not a package
from run import append_results  # noqa: E402


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(server_url: str, revoked: int) -> dict[str, Any]:
    from certforge.api.domain import crls
    from certforge.api.revocation_http import Conditions, crl_reply
    from certforge.api.revocation_memory import CrlMemory
    from certforge.common.crypto.envelope import KeyRing
    from certforge.common.db.engine import async_url, session_factory
    from certforge.common.db.migrations import upgrade
    from certforge.devstack import create_database, drop_database
    from certforge.issuer.ca_cache import SignerCache
    from certforge.issuer.revocation import RevocationPublisher, RevocationSettings

    name = f"bench_crl_{uuid4().hex[:6]}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(async_url(url), pool_size=2)
    sessions = session_factory(engine)
    results: dict[str, Any] = {"revoked": revoked, "load_before": os.getloadavg()}
    try:
        ca_keys = KeyRing.parse(KeyRing.generate_text("bench-ca"))
        leaf_keys = KeyRing.parse(KeyRing.generate_text("bench-leaf"))
        ca_id: UUID = await _seed(engine, ca_keys)
        start = time.perf_counter()
        await _fill_revoked(engine, ca_id, revoked)
        results["seed_seconds"] = time.perf_counter() - start

        publisher = RevocationPublisher(
            sessions, SignerCache(ca_keys), leaf_keys, RevocationSettings()
        )
        rss_before, peak_before = _rss_mib(), _peak_mib()
        start = time.perf_counter()
        built = await publisher.refresh()
        results["build_seconds"] = time.perf_counter() - start
        results["build_peak_mib"] = _peak_mib()
        results["build_peak_growth_mib"] = max(0.0, _peak_mib() - max(rss_before, peak_before))
        results["rss_before_mib"] = rss_before
        assert built == 1, built

        memory = CrlMemory()
        start = time.perf_counter()
        served = await crls.current(sessions, memory, ca_id, time.monotonic, 3600)
        results["load_seconds"] = time.perf_counter() - start
        results["crl_bytes"] = len(served.der)
        results["rss_with_crl_mib"] = _rss_mib()
        rounds = 2000
        conditions = Conditions()
        start = time.perf_counter()
        for _ in range(rounds):
            served = await crls.current(sessions, memory, ca_id, time.monotonic, 3600)
            reply = crl_reply(served, False, datetime.now(UTC), conditions)
        results["serve_us"] = (time.perf_counter() - start) / rounds * 1e6
        assert reply.status == 200
        assert reply.body is served.der

        async with engine.connect() as conn:
            query = sa.text("SELECT certificate_pem FROM certificate_authorities")
            ca_pem = (await conn.execute(query)).scalar_one()
        results.update(await asyncio.to_thread(_openssl_verify, served.der, ca_pem))
    finally:
        await engine.dispose()
        await drop_database(server_url, name)
    results["load_after"] = os.getloadavg()
    return results


def _openssl_verify(der: bytes, ca_pem: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        crl_file, ca_file = Path(work) / "crl.der", Path(work) / "ca.pem"
        crl_file.write_bytes(der)
        ca_file.write_text(ca_pem)
        start = time.perf_counter()
        done = subprocess.run(
            ["openssl", "crl", "-inform", "DER", "-in", str(crl_file), "-CAfile", str(ca_file),
             "-noout"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    return {"openssl_seconds": seconds, "openssl": (done.stdout + done.stderr).strip()}


async def _fill_revoked(engine: Any, ca_id: UUID, count: int) -> None:
    """`count` revoked certificates valid for 30 more days (so the CRL must list them)."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("ALTER TABLE certificates DROP CONSTRAINT certificates_request_id_fkey")
        )
        await conn.execute(
            sa.text(
                "INSERT INTO certificates (id, application_id, profile_id, ca_id, request_id, "
                "serial_number, common_name, subject_dn, sans, key_algorithm, method, not_before, "
                "not_after, status, revoked_at, revocation_reason, certificate_pem, "
                "fingerprint_sha256, tags, auto_renew, renew_before_days, renew_at, "
                "renewal_attempts, created_at, updated_at) SELECT gen_random_uuid(), :app, "
                ":profile, :ca, gen_random_uuid(), to_hex(g) || md5(g::text), "
                "'h' || g || '.example.com', "
                "'CN=h' || g, '[]', 'EC_P256', 'managed', now() - interval '10 days', "
                "now() + interval '30 days', 'revoked', now() - (g * interval '1 second'), "
                "CASE WHEN g % 3 = 0 THEN 'unspecified' ELSE 'keyCompromise' END, 'x', "
                "md5('f' || g), '{}', false, 30, now() + interval '20 days', 0, now(), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"app": APP, "profile": PROFILE, "ca": ca_id, "n": count},
        )
        await conn.execute(sa.text("ANALYZE certificates"))


def render(results: dict[str, Any]) -> str:
    return (
        f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — `bench/crl_scale.py`, "
        f"{results['revoked']:,} revoked entries\n\n"
        f"The issuer's `RevocationPublisher.refresh()` (query the revoked serials, build, sign "
        f"with EC P-256, store): **{results['build_seconds']:.1f} s**, peak resident memory of "
        f"the process {results['build_peak_mib']:.0f} MiB ({results['build_peak_growth_mib']:.0f}"
        f" MiB above what it held before). The CRL: {results['crl_bytes']:,} bytes DER. The api "
        f"loading it into memory: {results['load_seconds']:.2f} s (resident "
        f"{results['rss_with_crl_mib']:.0f} MiB after); serving it from memory "
        f"{results['serve_us']:.1f} µs per request before the bytes are written. `openssl crl "
        f"-CAfile` parses and verifies it in {results['openssl_seconds']:.1f} s "
        f'("{results["openssl"]}"). Seeding the rows took {results["seed_seconds"]:.0f} s. '
        f"Machine: {os.cpu_count()} cores shared with other work; load average (1/5/15 min) "
        f"{'/'.join(f'{x:.1f}' for x in results['load_before'])} before, "
        f"{'/'.join(f'{x:.1f}' for x in results['load_after'])} after.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revoked", type=int, default=1_000_000)
    parser.add_argument(
        "--database-server",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server URL (a database of its own is created and dropped)",
    )
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    results = asyncio.run(measure(args.database_server, args.revoked))
    report = render(results)
    print(report)
    if args.record:
        append_results(report)


if __name__ == "__main__":
    main()
