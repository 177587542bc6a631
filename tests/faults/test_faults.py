"""Issue 20: the services as separate processes under a mixed load while every one of them is
SIGKILLed, NATS and PostgreSQL are paused and one of them crashes and restarts — in a different
order and at different moments for each seed. After each run every check of `load_checks_kit`
holds. `make test-faults` runs it (also from `.ci/run`); figures in tests/faults/RESULTS.md.

The number of runs is `CERTFORGE_FAULT_RUNS` (20 by default), the requests per run
`CERTFORGE_FAULT_REQUESTS` (1,000: 60 % issuance, managed or CSR at random, 25 % renewals,
15 % revocations).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from load_checks_kit import settle, verify
from load_kit import Client, Tally, issue_all, renew_and_revoke, set_up
from stack_kit import SERVICES, Engines, Services, resume

RUNS = int(os.environ.get("CERTFORGE_FAULT_RUNS", "20"))
REQUESTS = int(os.environ.get("CERTFORGE_FAULT_REQUESTS", "1000"))
CONCURRENCY = 16
FAULT_WINDOW = 20.0
"""Seconds over which one run's faults are spread, from the start of its load."""
RESULTS = Path(os.environ.get("CERTFORGE_FAULT_RESULTS", "/tmp/certforge-fault-results.jsonl"))

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    state = Path(tempfile.mkdtemp(prefix="cf-faults-", dir="/tmp"))
    engines = Engines.start(state)
    try:
        yield engines
    finally:
        engines.stop()
        if not os.environ.get("CERTFORGE_FAULT_KEEP"):  # the services' logs, to read after
            shutil.rmtree(state, ignore_errors=True)


def plan(rng: random.Random) -> list[tuple[float, str]]:
    """Every service killed once, NATS and PostgreSQL each paused, and one of them crashed and
    restarted, at random moments of the window, in random order."""
    faults = [f"kill:{s}" for s in SERVICES] + ["pause:nats", "pause:postgres"]
    faults.append(rng.choice(["crash:nats", "crash:postgres"]))
    rng.shuffle(faults)
    moments = sorted(rng.uniform(0.5, FAULT_WINDOW) for _ in faults)
    return list(zip(moments, faults, strict=True))


async def inject(
    engines: Engines, services: Services, schedule: list[tuple[float, str]], rng: random.Random
) -> list[str]:
    started, done = time.monotonic(), []
    for at, fault in schedule:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        action, target = fault.split(":")
        if action == "kill":
            services.kill(target)
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            services.start(target)
        elif action == "pause":
            pids = engines.pause_nats() if target == "nats" else engines.pause_postgres()
            await asyncio.sleep(rng.uniform(3.0, 8.0))
            resume(pids)
        elif target == "nats":
            await asyncio.to_thread(engines.kill_and_restart_nats)
        else:
            await asyncio.to_thread(engines.kill_and_restart_postgres)
        done.append(f"{time.monotonic() - started:5.1f}s {fault}")
    return done


async def _targets(
    database_url: str, rng: random.Random, renewals: int, revocations: int
) -> tuple[list[str], list[str]]:
    """Certificates issued so far: managed ones to renew (a CSR one would need a new CSR),
    others to revoke."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, method FROM certificates WHERE status = 'active'")
    finally:
        await conn.close()
    rng.shuffle(rows := list(rows))
    managed = [str(r["id"]) for r in rows if r["method"] == "managed"][:renewals]
    rest = [str(r["id"]) for r in rows if str(r["id"]) not in managed][:revocations]
    return managed, rest


def _append(record: dict[str, object]) -> None:
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", range(RUNS))
async def test_faults_lose_and_duplicate_nothing(engines: Engines, seed: int) -> None:
    rng = random.Random(seed)
    services = await Services.create(
        engines.pg.url, engines.nats.url, f"fault_{seed}", engines.state / f"run-{seed}"
    )
    directory = services.logs / "destination"
    directory.mkdir()
    services.start_all()
    started = time.monotonic()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - started, 1)

    try:
        await services.wait_ready()
        headers = {"Authorization": f"Bearer {services.admin_token}"}
        async with httpx.AsyncClient(base_url=services.url, headers=headers, timeout=30) as http:
            await set_up(http, str(directory), engines.moto_url)
        tally = Tally()
        client = Client(services.url, services.admin_token, tally, time.monotonic() + 240)
        schedule = plan(rng)
        faults = asyncio.create_task(inject(engines, services, schedule, rng))
        issued = int(REQUESTS * 0.6)
        mark("load_started")
        await issue_all(client, rng, issued, CONCURRENCY)
        mark("issued_answered")
        await settle(services.database_url, None, services.namespace, 60)  # requests only
        mark("issued_settled")
        renew, revoke = await _targets(
            services.database_url,
            rng,
            int(REQUESTS * 0.25),
            REQUESTS - issued - int(REQUESTS * 0.25),
        )
        await renew_and_revoke(client, renew, revoke, CONCURRENCY)
        mark("all_answered")
        done = await faults
        await client.close()
        for name, code in list(services.exited()):  # one that died on its own is a finding
            log = (services.logs / f"{name}.log").read_text(errors="replace")
            pytest.fail(f"{name} exited by itself ({code}); the end of its log:\n{log[-4000:]}")
        leftovers = await settle(services.database_url, engines.nats.url, services.namespace, 180)
        recovered = time.monotonic() - started
        mark("settled")
        verdict = await verify(
            services.database_url, engines.nats.url, services.namespace, tally.sent, directory,
            engines.moto_url,
        )  # fmt: skip
        server_errors = {k: v for k, v in tally.answers.items() if k.startswith("5") and k != "503"}
        if any(leftovers.values()):
            leftovers["syncer_log"] = (services.logs / "syncer.log").read_text()[-3000:]  # type: ignore[assignment]
        record = {
            "seed": seed, "faults": done, "answers": dict(tally.answers),
            "longest_stall_s": round(tally.longest_stall, 1), "run_s": round(recovered, 1),
            "marks": marks,
            "leftovers": leftovers, **verdict.figures, "problems": verdict.problems,
        }  # fmt: skip
        await asyncio.to_thread(_append, record)
        assert not server_errors, f"answers other than 503 among 5xx: {server_errors}"
        assert not verdict.problems, verdict.problems
        assert len(renew) + len(revoke) > 0
    finally:
        services.stop_all()
