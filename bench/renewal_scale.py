"""The renewal scan at scale: its cost grows with the certificates due, not those stored.

In a throwaway database (on the PostgreSQL at `--database`), certificates are loaded with
COPY, indexes dropped during the load and rebuilt after (as a bulk load should). Their
`renew_at` values are laid out so that the scan's `now` decides how many are due: the first
`--max-due` rows come due one millisecond apart, the rest much later. Then, with the renewer's
own code (`RenewalScanner.scan`, the full scan: renewals, expiries, expiry notices) and an
`OutboxRelay` publishing to JetStream as the renewer runs it (woken after each commit):

- at `--first` certificates stored: a scan with `--due` due, and one with none due;
- topped up to `--total`: the same two, then one with `--max-due` due.

Each measurement is the time from the scan's start to the last renew command acknowledged by
JetStream (and how long claiming alone took). Between measurements the claims are undone.

    .venv/bin/python bench/renewal_scale.py                       # 10,000,000 / 100,000
    .venv/bin/python bench/renewal_scale.py --total 1000000 --first 100000 --due 1000 \
        --max-due 10000                                            # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lifecycle import APP, PROFILE, _seed

_COLUMNS = (
    "id",
    "application_id",
    "profile_id",
    "ca_id",
    "request_id",
    "serial_number",
    "common_name",
    "subject_dn",
    "sans",
    "key_algorithm",
    "method",
    "not_before",
    "not_after",
    "status",
    "certificate_pem",
    "fingerprint_sha256",
    "encrypted_private_key",
    "tags",
    "auto_renew",
    "renew_before_days",
    "renew_at",
    "renewal_attempts",
    "created_at",
    "updated_at",
)


def _uuid(prefix: str, n: int) -> str:
    return f"{prefix}-0000-4000-8000-{n:012x}"


async def _rows(
    first: int, last: int, ca_id: Any, epoch: datetime, max_due: int, chunk: int = 20_000
) -> AsyncIterator[bytes]:
    """COPY text rows `first`..`last`: row g comes due at epoch + g ms when g <= max_due,
    else a year later; all expire long after (no expiry work in the scan)."""
    later = (epoch + timedelta(days=365)).isoformat()
    not_before = (epoch - timedelta(days=30)).isoformat()
    not_after = (epoch + timedelta(days=400)).isoformat()
    fixed = f"{APP}\t{PROFILE}\t{ca_id}\t"  # application, profile, CA
    tail = (
        f"\tEC_P256\tmanaged\t{not_before}\t{not_after}\tactive\tx\t"
        # encrypted_private_key: any bytes (the scan only checks it is not NULL), tags
        "{fp}\t\\\\x00\t{{}}\tt\t30\t{renew_at}\t0\t"
        f"{not_before}\t{not_before}\n"
    )
    for start in range(first, last + 1, chunk):
        lines = []
        for g in range(start, min(start + chunk, last + 1)):
            renew_at = (epoch + timedelta(milliseconds=g)).isoformat() if g <= max_due else later
            lines.append(
                f"{_uuid('00000000', g)}\t{fixed}{_uuid('00000001', g)}\t{g:x}\th{g}.example.com"
                f"\tCN=h{g}\t[]" + tail.format(fp=f"{g:064x}", renew_at=renew_at)
            )
        yield "".join(lines).encode()
        await asyncio.sleep(0)


async def _load(conn: asyncpg.Connection, first: int, last: int, **layout: Any) -> float:
    """COPY rows into `certificates` with its secondary indexes dropped, then rebuilt."""
    started = time.perf_counter()
    indexes = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'certificates' "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
    await conn.copy_to_table(
        "certificates", source=_rows(first, last, **layout), columns=_COLUMNS, format="text"
    )
    for index in indexes:
        await conn.execute(index["indexdef"])
    await conn.execute("ANALYZE certificates")
    return time.perf_counter() - started


async def _undo_claims(conn: asyncpg.Connection, js: Any, stream: str) -> None:
    await conn.execute(
        "UPDATE certificates SET renewing_request_id = NULL WHERE renewing_request_id IS NOT NULL"
    )
    await conn.execute("DELETE FROM outbox")
    await conn.execute("DELETE FROM certificate_requests")
    await conn.execute("VACUUM ANALYZE certificates")
    await js.purge_stream(stream)


async def _measure(
    sessions: Any, database: Any, js: Any, subjects: Any, stream: str, now: datetime, due: int
) -> dict[str, float]:
    """One full scan at `now` with the relay running: seconds to claim, seconds until JetStream
    holds every renew command."""
    from certforge.common.outbox import OutboxRelay
    from certforge.common.settings import OutboxSettings
    from certforge.renewer.scan import RenewalScanner
    from certforge.renewer.settings import ScanSettings

    relay = OutboxRelay(database, js, OutboxSettings(batch_size=1000))
    scanner = RenewalScanner(sessions, subjects, ScanSettings(), after_commit=relay.wake)
    relaying = asyncio.create_task(relay.run())
    started = time.perf_counter()
    try:
        result = await scanner.scan(now)
        claimed = time.perf_counter() - started
        while (await js.stream_info(stream)).state.messages < due:  # noqa: ASYNC110 - a count
            await asyncio.sleep(0.05)
        published = time.perf_counter() - started
    finally:
        relay.stop()
        await relaying
    assert result.renewals == due, (result.renewals, due)
    return {"due": due, "claim_s": round(claimed, 3), "published_s": round(published, 3)}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from certforge.common.contracts.subjects import Subjects
    from certforge.common.crypto.envelope import KeyRing
    from certforge.common.db.engine import async_url, session_factory
    from certforge.common.db.migrations import upgrade
    from certforge.common.db.pool import LazyPool
    from certforge.common.messaging import connect, delete_streams, ensure_streams
    from certforge.common.settings import NatsSettings
    from certforge.devstack import create_database, drop_database

    name = f"bench_renewal_{uuid4().hex[:6]}"
    url = await create_database(args.database, name)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(async_url(url), pool_size=4)
    sessions = session_factory(engine)
    database = LazyPool(url, max_size=4)
    subjects = Subjects(f"r{uuid4().hex[:6]}")
    nats = await connect(args.nats, name="bench-renewal")
    conn = await asyncpg.connect(url)
    out: dict[str, Any] = {"runs": []}
    try:
        js = nats.jetstream()
        await ensure_streams(js, subjects, NatsSettings())
        stream = subjects.commands_stream
        ca_id = await _seed(engine, KeyRing.parse(KeyRing.generate_text("bench-ca")))
        # the certificates' own issuance requests are not made: nothing here reads them
        await conn.execute("ALTER TABLE certificates DROP CONSTRAINT certificates_request_id_fkey")
        epoch = datetime.now(UTC) - timedelta(days=1)
        layout = {"ca_id": ca_id, "epoch": epoch, "max_due": args.max_due}

        async def measure(stored: int, due: int) -> None:
            now = epoch + timedelta(milliseconds=due) if due else epoch
            run = await _measure(sessions, database, js, subjects, stream, now, due)
            run["stored"] = stored
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
            await _undo_claims(conn, js, stream)

        out["load_first_s"] = round(await _load(conn, 1, args.first, **layout), 1)
        print(f"loaded {args.first:,} in {out['load_first_s']} s", flush=True)
        await measure(args.first, args.due)
        await measure(args.first, 0)
        out["load_rest_s"] = round(await _load(conn, args.first + 1, args.total, **layout), 1)
        print(f"loaded {args.total:,} in all, +{out['load_rest_s']} s", flush=True)
        await measure(args.total, args.due)
        await measure(args.total, 0)
        await measure(args.total, args.max_due)
        out["plan"] = "\n".join(
            r[0]
            for r in await conn.fetch(
                # the claim as `RenewalScanner.claim_due` sends it
                "EXPLAIN SELECT id FROM certificates WHERE status = 'active' AND auto_renew "
                "AND renewed_by_id IS NULL AND renewing_request_id IS NULL "
                "AND encrypted_private_key IS NOT NULL AND renew_at <= $1 "
                "AND ca_id = ANY($2::uuid[]) ORDER BY renew_at LIMIT 500 "
                "FOR UPDATE SKIP LOCKED",
                epoch + timedelta(milliseconds=args.max_due),
                [ca_id],
            )
        )
    finally:
        await conn.close()
        await delete_streams(nats.jetstream(), subjects, NatsSettings())
        await nats.close()
        await database.close()
        await engine.dispose()
        await drop_database(args.database, name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--total", type=int, default=10_000_000)
    parser.add_argument("--first", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--max-due", type=int, default=100_000)
    args = parser.parse_args()
    assert args.due <= args.max_due <= args.first <= args.total
    out = asyncio.run(bench(args))
    print(json.dumps({k: v for k, v in out.items() if k != "plan"}))
    print(out["plan"])


if __name__ == "__main__":
    main()
