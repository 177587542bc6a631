"""One run of tests/scale: services (one or more processes each) on the engines a scenario
built, the mixed load of tests/faults, the scenario's faults meanwhile, then every check of
`load_checks_kit` and the figures of tests/scale/RESULTS.md.

The load: issuance (managed or CSR), then renewals and revocations through the API, and
certificates made due for the renewer (their `renew_at` moved to now, as the passing of time
would), so that renewer replicas race for them."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from load_checks_kit import settle, verify
from load_kit import Client, Tally, issue_all, renew_and_revoke, set_up
from stack_kit import Services

REQUESTS = int(os.environ.get("CERTFORGE_SCALE_REQUESTS", "600"))
CONCURRENCY = 16
RESULTS = Path(os.environ.get("CERTFORGE_SCALE_RESULTS", "/tmp/certforge-scale-results.jsonl"))

Faults = Callable[[Callable[[str], None]], Awaitable[None]]
"""A scenario's faults, run beside the load; it notes each one (with `note`) as it happens."""


@dataclass
class Run:
    services: Services
    scenario: str
    seed: int = 0
    moments: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.moments.append((time.monotonic(), what))


async def _targets(
    database_url: str, rng: random.Random, renewals: int, revocations: int, due: int
) -> tuple[list[str], list[str], list[str]]:
    """Active certificates: managed ones to renew through the API, others to revoke, and
    managed ones left to the renewer, made due now."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = list(await conn.fetch("SELECT id, method FROM certificates WHERE status = 'active'"))
        rng.shuffle(rows)
        managed = [str(r["id"]) for r in rows if r["method"] == "managed"]
        renew, scheduled = managed[:renewals], managed[renewals : renewals + due]
        rest = [str(r["id"]) for r in rows if str(r["id"]) not in set(renew + scheduled)]
        await conn.execute(
            "UPDATE certificates SET renew_at = now() WHERE id = ANY($1::uuid[])", scheduled
        )
    finally:
        await conn.close()
    return renew, rest[:revocations], scheduled


async def _renewed_once(database_url: str, scheduled: list[str]) -> list[str]:
    """Problems with the certificates left to the renewer: each renewed, exactly once."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT c.id, count(r.id) AS renewals FROM certificates c
            LEFT JOIN certificate_requests r ON r.renewal_of_id = c.id AND r.status = 'issued'
            WHERE c.id = ANY($1::uuid[]) GROUP BY c.id""",
            scheduled,
        )
    finally:
        await conn.close()
    counts = [r["renewals"] for r in rows]
    problems = []
    if any(n == 0 for n in counts):
        problems.append(f"{counts.count(0)} due certificates never renewed by the renewer")
    if any(n > 1 for n in counts):
        problems.append(f"{sum(n > 1 for n in counts)} due certificates renewed twice")
    return problems


def _recovery(run: Run, tally: Tally) -> dict[str, float]:
    """For each fault, how long clients kept getting answers to retry after it (the last
    setback before the next fault, or before the end)."""
    out: dict[str, float] = {}
    bounds = [t for t, _ in run.moments] + [float("inf")]
    for (at, what), until in zip(run.moments, bounds[1:], strict=True):
        after = [t for t in tally.setbacks if at <= t < until]
        out[what] = round(max(after) - at, 1) if after else 0.0
    return out


async def mixed_load(
    run: Run, faults: Faults, *, requests: int = REQUESTS, directory: Path
) -> dict[str, Any]:
    """Start the services, send the load while `faults` runs, wait until nothing is in flight,
    check; the run's record (also appended to `RESULTS`). Stops the services."""
    services, rng = run.services, random.Random(run.seed)
    services.start_all()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - run.started, 1)

    try:
        await services.wait_ready()
        headers = {"Authorization": f"Bearer {services.admin_token}"}
        async with httpx.AsyncClient(base_url=services.url, headers=headers, timeout=30) as http:
            await set_up(http, str(directory), None, auto_renew=True)
        tally = Tally()
        client = Client(services.urls, services.admin_token, tally, time.monotonic() + 300)
        issued = int(requests * 0.6)
        mark("load_started")
        load_started = time.monotonic()
        fault_task = asyncio.create_task(faults(run.note))
        await issue_all(client, rng, issued, CONCURRENCY)
        mark("issued_answered")
        await settle(services.database_url, None, services.namespace, 90)
        mark("issued_settled")
        issuing_s = time.monotonic() - load_started
        renewals, revocations = int(requests * 0.2), int(requests * 0.15)
        due = requests - issued - renewals - revocations
        renew, revoke, scheduled = await _targets(
            services.database_url, rng, renewals, revocations, due
        )
        await renew_and_revoke(client, renew, revoke, CONCURRENCY)
        mark("all_answered")
        await fault_task
        await client.close()
        exited = [name for name, _ in services.exited()]
        trace: list[dict[str, int]] = []
        leftovers = await settle(
            services.database_url, services.nats_url, services.namespace, 180, trace
        )
        mark("settled")
        verdict = await verify(
            services.database_url, services.nats_url, services.namespace, tally.sent, directory,
            None,
        )  # fmt: skip
        problems = verdict.problems + await _renewed_once(services.database_url, scheduled)
        problems += [f"{name} exited by itself" for name in exited]
        if any(leftovers.values()):
            problems.append(f"still in flight: {leftovers}")
        server_errors = {k: v for k, v in tally.answers.items() if k.startswith("5") and k != "503"}
        # (a 503 without Retry-After is counted apart, so it is among these)
        if server_errors:
            problems.append(f"answers other than 503 among 5xx: {server_errors}")
        record = {
            "scenario": run.scenario,
            "replicas": services.replicas["api"],
            "faults": [f"{at - load_started:5.1f}s {what}" for at, what in run.moments],
            "recovery_s": _recovery(run, tally),
            "answers": dict(tally.answers),
            "longest_stall_s": round(tally.longest_stall, 1),
            "issued_per_s": round(issued / issuing_s, 1),
            "renewer_renewed": len(scheduled),
            "run_s": marks["settled"],
            "marks": marks,
            "settling": trace,
            **verdict.figures,
            "problems": problems,
        }
        await asyncio.to_thread(_append, record)
        return record
    finally:
        services.stop_all()


def _append(record: dict[str, Any]) -> None:
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")
