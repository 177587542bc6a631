"""Sync benchmarks (part of `make bench`): the running system's syncer pushing certificates to
AWS Certificate Manager (a `moto_server` started here) and to a directory.

Against the system `run.py` started, through its API and its syncer, nothing in-process:

1. An application of its own (`bench-sync-…`) with the bench profile, and two syncs made with
   `POST …/syncs`: `aws-acm` (moto_server, explicit credentials) and `directory` (a temporary
   directory).
2. Lag: `N` certificates are issued at full speed (`Prefer: wait`, `CONCURRENCY` requests at
   a time), then `PACED` more at `PACED_RATE` per second; for each certificate and
   destination, the time from its `certificate.issued` event to its `sync.succeeded` event,
   both read from the events stream (the CloudEvents `time` each producer stamped it with,
   just before committing it). p50 / p99 / max per destination and phase.
3. Throughput: `POST …/syncs/{id}/run` on one sync at a time pushes every certificate again
   (into the objects of step 2: ACM re-imports into the same ARN); certificates per second =
   certificates / (time of the last `sync.succeeded` - time the run was asked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

N = 300
CONCURRENCY = 8
PACED = 50
PACED_RATE = 5.0
"""Certificates per second of the paced phase (one request at a time)."""
TIMEOUT = 600.0
"""Seconds to wait for every push of one phase."""
REGION = "us-east-1"
MOTO_CREDENTIALS = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "bench-secret-access-key-for-moto-only",
}
KINDS = ("aws-acm", "directory")
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
NAMESPACE = "certforge"
"""The NATS namespace of `certforge-dev run` (the default)."""


async def sync_bench(base: str, token: str, nats_url: str, profile: str) -> dict[str, Any]:
    """Run both phases against the system at `base`; figures per destination kind."""
    import httpx

    from certforge.common.contracts.subjects import Subjects
    from certforge.common.messaging import connect

    subjects = Subjects(NAMESPACE)
    directory = Path(tempfile.mkdtemp(prefix="cf-bench-sync-", dir="/tmp"))
    nats = await connect(nats_url, name="bench-sync")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with _moto() as moto_url:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
                app = await _application(api, profile)
                syncs = {
                    "aws-acm": await _sync(
                        api,
                        app,
                        "aws-acm",
                        {"region": REGION, "endpoint_url": moto_url},
                        MOTO_CREDENTIALS,
                    ),
                    "directory": await _sync(api, app, "directory", {"path": str(directory)}),
                }
                js = nats.jetstream()
                events = _Events(js, subjects, app)
                results: dict[str, Any] = {"n": N, "concurrency": CONCURRENCY, "paced": PACED}

                started = time.perf_counter()
                full = await _issue(api, app, profile, range(N), CONCURRENCY)
                results["issue_seconds"] = time.perf_counter() - started
                await events.wait_for("sync.*", 2 * N)
                paced = await _issue(api, app, profile, range(N, N + PACED), 1, 1 / PACED_RATE)
                await events.wait_for("sync.*", 2 * (N + PACED))
                issued = {
                    e["data"]["certificate_id"]: _time(e)
                    for e in await events.read("certificate.issued")
                }
                done = await events.read("sync.*")
                for kind, sync_id in syncs.items():
                    mine = [e for e in done if e["data"]["sync_id"] == sync_id]
                    ok = [e for e in mine if e["type"].endswith("sync.succeeded.v1")]
                    results[kind] = {"succeeded": len(ok), "failed": len(mine) - len(ok)}
                    for phase, ids in (("lag_ms", set(full)), ("paced_lag_ms", set(paced))):
                        results[kind][phase] = _percentiles(
                            [
                                (_time(e) - issued[e["data"]["certificate_id"]]) * 1000
                                for e in ok
                                if e["data"]["certificate_id"] in ids
                            ]
                        )

                for kind, sync_id in syncs.items():
                    before = await events.count("sync.*")
                    asked = time.time()
                    r = await api.post(f"/api/v1/applications/{app}/syncs/{sync_id}/run")
                    r.raise_for_status()
                    queued = r.json()["queued"]
                    await events.wait_for("sync.*", before + queued)
                    run = (await events.read("sync.*"))[before:]
                    last = max(_time(e) for e in run)
                    results[kind]["run_queued"] = queued
                    results[kind]["run_failed"] = sum(
                        1 for e in run if not e["type"].endswith("sync.succeeded.v1")
                    )
                    results[kind]["per_second"] = queued / (last - asked)
                    assert queued == N + PACED
                results["objects_in_acm"] = await asyncio.to_thread(_acm_count, moto_url)
                results["folders"] = len(os.listdir(directory))
                return results
    finally:
        await nats.close()
        shutil.rmtree(directory, ignore_errors=True)


def report(results: dict[str, Any]) -> None:
    for kind in KINDS:
        r = results[kind]
        lag, paced = r["lag_ms"], r["paced_lag_ms"]
        print(
            f"sync to {kind}: {r['per_second']:.1f} certificates/s ({r['run_queued']} re-pushed "
            f"by a run); issued→succeeded p50 {lag['p50']:.0f} ms, p99 {lag['p99']:.0f} ms "
            f"issuing at full speed, p50 {paced['p50']:.0f} ms, p99 {paced['p99']:.0f} ms at "
            f"{PACED_RATE:.0f}/s ({r['succeeded']} succeeded, {r['failed']} failed)"
        )


def markdown(results: dict[str, Any]) -> list[str]:
    """Lines for RESULTS.md, to follow the `make bench` section they belong to."""
    lines = [
        "",
        f"Syncs (bench/sync.py; the system's syncer, default settings): an application with an "
        "`aws-acm` sync (moto_server on this machine) and a `directory` sync; "
        f"{results['n']} EC P-256 certificates issued at full speed ({results['concurrency']} "
        f"requests at a time, {results['issue_seconds']:.1f} s), then {results['paced']} at "
        f"{PACED_RATE:.0f} per second. Lag = `sync.succeeded` event time - `certificate.issued` "
        "event time, per certificate and destination; throughput = a `POST …/run` of each sync "
        f"alone re-pushing all {results['n'] + results['paced']} certificates (ACM re-imports "
        "into the same ARNs).",
        "",
        "| destination | certificates/s (run) | lag p50 / p99 / max ms, full speed | "
        f"lag p50 / p99 / max ms, {PACED_RATE:.0f}/s | failed |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        r = results[kind]
        lag, paced = r["lag_ms"], r["paced_lag_ms"]
        lines.append(
            f"| {kind} | {r['per_second']:.1f} | {lag['p50']:.0f} / {lag['p99']:.0f} / "
            f"{lag['max']:.0f} | {paced['p50']:.0f} / {paced['p99']:.0f} / {paced['max']:.0f} | "
            f"{r['failed'] + r['run_failed']} |"
        )
    lines += [
        "",
        f"Afterwards: {results['objects_in_acm']} certificates in ACM and {results['folders']} "
        "directories, one per certificate: the runs replaced them in place.",
        "",
    ]
    return lines


def record(results: dict[str, Any], results_file: Path) -> None:
    with results_file.open("a") as f:
        f.write("\n".join(markdown(results)))


# --- the pieces --------------------------------------------------------------------------------


async def _application(api: Any, profile: str) -> str:
    slug = f"bench-sync-{uuid.uuid4().hex[:6]}"
    (await api.post("/api/v1/applications", json={"slug": slug, "name": slug})).raise_for_status()
    (await api.put(f"/api/v1/applications/{slug}/profiles/{profile}")).raise_for_status()
    (
        await api.put(
            f"/api/v1/applications/{slug}/profiles/{profile}/enrollment/api",
            json={"enabled": True, "auto_renew": False, "renew_before_days": 10},
        )
    ).raise_for_status()
    return slug


async def _sync(
    api: Any,
    app: str,
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None = None,
) -> str:
    body = {"name": kind, "kind": kind, "settings": settings, "credentials": credentials}
    r = await api.post(f"/api/v1/applications/{app}/syncs", json=body)
    r.raise_for_status()
    return str(r.json()["id"])


async def _issue(
    api: Any,
    app: str,
    profile: str,
    numbers: range,
    concurrency: int,
    interval: float | None = None,
) -> list[str]:
    """A managed certificate per number, `concurrency` requests at a time (one request every
    `interval` seconds at most, if given); their ids."""
    todo = iter(numbers)
    ids: list[str] = []
    loop = asyncio.get_running_loop()
    next_start = loop.time()

    async def worker() -> None:
        nonlocal next_start
        for i in todo:
            if interval is not None:
                await asyncio.sleep(max(0.0, next_start - loop.time()))
                next_start = max(next_start + interval, loop.time())
            name = f"sync{i}.example.com"
            body = {
                "profile": profile,
                "common_name": name,
                "sans": [{"type": "dns", "value": name}],
                "ttl": "30d",
            }
            r = await api.post(
                f"/api/v1/applications/{app}/certificate-requests",
                json=body,
                headers={"Prefer": "wait=30"},
            )
            r.raise_for_status()
            ids.append(r.json()["certificate"]["id"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


class _Events:
    """The application's events on the events stream, read with ephemeral consumers."""

    def __init__(self, js: Any, subjects: Any, app: str) -> None:
        self._js = js
        self._stream = subjects.events_stream
        self._subjects = subjects
        self._app = app

    def _subject(self, name: str) -> str:
        return str(self._subjects.event(self._app, name))

    async def count(self, name: str) -> int:
        info = await self._js.stream_info(self._stream, subjects_filter=self._subject(name))
        return sum((info.state.subjects or {}).values())

    async def wait_for(self, name: str, n: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while (seen := await self.count(name)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {seen} of {n} {name} events after {TIMEOUT:.0f} s")
            await asyncio.sleep(0.2)

    async def read(self, name: str) -> list[dict[str, Any]]:
        import orjson
        from nats.errors import TimeoutError as NatsTimeoutError
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        subscription = await self._js.pull_subscribe(
            self._subject(name),
            stream=self._stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=30.0,
            ),
        )
        out: list[dict[str, Any]] = []
        try:
            while True:
                try:
                    batch = await subscription.fetch(1000, timeout=0.5)
                except (TimeoutError, NatsTimeoutError):
                    break
                out.extend(orjson.loads(m.data) for m in batch)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        return out


def _time(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p99": cuts[98], "max": max(values)}


@contextlib.contextmanager
def _moto() -> Any:
    """A moto_server on a free port (credentials not checked); its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _acm_count(moto_url: str) -> int:
    import boto3

    client = boto3.session.Session(
        aws_access_key_id=MOTO_CREDENTIALS["access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["secret_access_key"],
        region_name=REGION,
    ).client("acm", endpoint_url=moto_url)
    pages = client.get_paginator("list_certificates").paginate()
    return sum(len(page["CertificateSummaryList"]) for page in pages)
