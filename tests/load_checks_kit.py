"""What must hold after a run, however it was disturbed: every accepted request ended with exactly
one certificate or a recorded failure, nothing is stuck, every certificate was announced, each
destination holds exactly what it should, and the outbox is empty."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import nats
from botocore.exceptions import ClientError
from cryptography import x509

from certforge.common.contracts.subjects import Subjects
from certforge.common.messaging import server_list
from load_kit import Sent

SETTLED = """
SELECT
  (SELECT count(*) FROM certificate_requests WHERE status = 'pending') AS pending_requests,
  (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent,
  (SELECT count(*) FROM sync_states WHERE status = 'pending') AS pending_syncs,
  (SELECT count(*) FROM certificates c WHERE renewing_request_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM certificate_requests r WHERE r.id = c.renewing_request_id
      AND r.status <> 'pending')) AS stale_claims
"""


async def settle(
    database_url: str,
    nats_url: str | None,
    namespace: str,
    seconds: float,
    trace: list[dict[str, int]] | None = None,
) -> dict[str, int]:
    """Wait until nothing is in flight, twice in a row a second apart (a consumer may be about
    to write what the next reading sees); the last reading. Each reading's non-zero figures
    are appended to `trace`. Reconnects for each reading: the
    database or NATS may be paused or restarting under it. Without `nats_url`: only until no
    request is pending."""
    deadline = time.monotonic() + seconds
    quiet = 0
    while True:
        row = await _in_flight(database_url, nats_url, namespace)
        if trace is not None:
            trace.append({k: v for k, v in row.items() if v})
        quiet = quiet + 1 if not any(row.values()) else 0
        if quiet == 2 or time.monotonic() > deadline:
            return row
        await asyncio.sleep(1)


async def _in_flight(database_url: str, nats_url: str | None, namespace: str) -> dict[str, int]:
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            row: dict[str, int] = dict(await conn.fetchrow(SETTLED, timeout=5))
        finally:
            await conn.close(timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return {"database_unreachable": 1}
    if nats_url is None:
        return {"pending_requests": row["pending_requests"]}
    try:
        client = await nats.connect(
            server_list(nats_url), connect_timeout=2, max_reconnect_attempts=0
        )
    except Exception:
        return {**row, "nats_unreachable": 1}
    try:
        js = client.jetstream(timeout=5)
        for stream in await js.streams_info():
            if not stream.config.name or not stream.config.name.startswith(namespace.upper()):
                continue
            for consumer in await js.consumers_info(stream.config.name):
                key = f"lag_{stream.config.name}_{consumer.name}"
                row[key] = consumer.num_pending + consumer.num_ack_pending
                if row[key]:
                    row[f"{key}_ack_pending"] = consumer.num_ack_pending
                    row[f"{key}_redelivered"] = consumer.num_redelivered
    except Exception:
        row["nats_unreadable"] = 1
    finally:
        await client.close()
    return row


@dataclass
class Verdict:
    figures: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


async def verify(
    database_url: str, nats_url: str, namespace: str, sent: list[Sent], directory: Path,
    moto_url: str | None,
) -> Verdict:  # fmt: skip
    verdict = Verdict()
    conn = await asyncpg.connect(database_url)
    try:
        await _requests(conn, sent, verdict)
        await _certificates(conn, verdict)
        await _crl_numbers(conn, verdict)
        await _destinations(conn, directory, moto_url, verdict)
        announced = await _announced(nats_url, namespace)
        certs = {str(r["id"]) for r in await conn.fetch("SELECT id FROM certificates")}
        revoked = {
            str(r["id"])
            for r in await conn.fetch("SELECT id FROM certificates WHERE status = 'revoked'")
        }
        verdict.check(
            certs <= announced["issued"],
            f"{len(certs - announced['issued'])} certificates never announced",
        )
        verdict.check(
            revoked <= announced["revoked"],
            f"{len(revoked - announced['revoked'])} revocations never announced",
        )
        verdict.figures["events"] = sum(len(v) for v in announced.values())
    finally:
        await conn.close()
    return verdict


async def _requests(conn: asyncpg.Connection, sent: list[Sent], verdict: Verdict) -> None:
    statuses = Counter(
        r["status"] for r in await conn.fetch("SELECT status FROM certificate_requests")
    )
    verdict.figures.update({f"requests_{k}": v for k, v in statuses.items()})
    waits = await conn.fetchrow(
        """SELECT max(extract(epoch FROM completed_at - created_at)) AS longest,
                  percentile_cont(0.99) WITHIN GROUP (
                      ORDER BY extract(epoch FROM completed_at - created_at)) AS p99
        FROM certificate_requests WHERE completed_at IS NOT NULL"""
    )
    verdict.figures["longest_wait_ms"] = round(float(waits["longest"] or 0) * 1000)
    verdict.figures["p99_wait_ms"] = round(float(waits["p99"] or 0) * 1000)
    verdict.check(
        statuses.get("pending", 0) == 0, f"{statuses.get('pending')} requests stuck pending"
    )
    unanswered = [s for s in sent if s.status is None]
    verdict.figures["unanswered"] = len(unanswered)
    verdict.check(not unanswered, f"{len(unanswered)} operations never got an answer")

    issues = [s for s in sent if s.kind in ("managed", "csr")]
    accepted = {s.key for s in issues if s.status in (200, 201, 202)}
    verdict.figures["accepted"] = len(accepted)
    verdict.check(len(accepted) == len(issues), f"{len(issues) - len(accepted)} issuance refused: "
                  f"{Counter(s.status for s in issues if s.key not in accepted)}")  # fmt: skip
    rows = await conn.fetch(
        """SELECT r.idempotency_key, r.status, r.error, count(c.id) AS certs
        FROM certificate_requests r LEFT JOIN certificates c ON c.request_id = r.id
        WHERE r.kind = 'issue' GROUP BY r.id""",
    )
    by_key = Counter(r["idempotency_key"] for r in rows)
    verdict.check(all(n == 1 for n in by_key.values()), "an Idempotency-Key has two requests")
    verdict.check(
        set(by_key) == accepted, f"requests without a client: {len(set(by_key) ^ accepted)}"
    )
    _outcomes(rows, verdict, "issue")

    renewals = await conn.fetch(
        """SELECT r.renewal_of_id, r.status, r.error, count(c.id) AS certs
        FROM certificate_requests r LEFT JOIN certificates c ON c.request_id = r.id
        WHERE r.kind = 'renew' GROUP BY r.id""",
    )
    per_target = Counter(str(r["renewal_of_id"]) for r in renewals)
    verdict.check(all(n == 1 for n in per_target.values()), "a certificate was renewed twice")
    asked = {s.target for s in sent if s.kind == "renew"}
    verdict.check(asked <= set(per_target), f"{len(asked - set(per_target))} renewals lost")
    _outcomes(renewals, verdict, "renew")

    revoked = {
        str(r["id"])
        for r in await conn.fetch("SELECT id FROM certificates WHERE status = 'revoked'")
    }
    asked = {s.target for s in sent if s.kind == "revoke"}
    verdict.figures["revoked"] = len(revoked)
    verdict.check(asked <= revoked, f"{len(asked - revoked)} revocations lost")


def _outcomes(rows: list[asyncpg.Record], verdict: Verdict, kind: str) -> None:
    issued = [r for r in rows if r["status"] == "issued"]
    failed = [r for r in rows if r["status"] in ("failed", "rejected")]
    verdict.figures[f"{kind}_issued"] = len(issued)
    verdict.figures[f"{kind}_failed"] = len(failed)
    verdict.check(
        all(r["certs"] == 1 for r in issued), f"an issued {kind} request has no or two certificates"
    )
    verdict.check(
        all(r["certs"] == 0 and r["error"] for r in failed),
        f"a failed {kind} request without its error",
    )


async def _certificates(conn: asyncpg.Connection, verdict: Verdict) -> None:
    duplicates = await conn.fetchval(
        "SELECT count(*) FROM (SELECT request_id FROM certificates"
        " GROUP BY request_id HAVING count(*) > 1) d"
    )
    verdict.figures["duplicates"] = duplicates
    verdict.check(duplicates == 0, f"{duplicates} requests with two certificates")
    unsent = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    verdict.check(unsent == 0, f"{unsent} outbox messages never published")
    verdict.figures["certificates"] = await conn.fetchval("SELECT count(*) FROM certificates")


async def _crl_numbers(conn: asyncpg.Connection, verdict: Verdict) -> None:
    """Each CRL number used once per CA, rising with time, and the number inside each signed CRL
    the one it was stored under (several issuers sign CRLs of one CA)."""
    rows = await conn.fetch(
        "SELECT ca_id, number, der FROM crls ORDER BY ca_id, this_update, number"
    )
    verdict.figures["crls"] = len(rows)
    seen: dict[object, list[int]] = {}
    for r in rows:
        seen.setdefault(r["ca_id"], []).append(r["number"])
        inside = x509.load_der_x509_crl(r["der"]).extensions.get_extension_for_class(x509.CRLNumber)
        verdict.check(inside.value.crl_number == r["number"], f"CRL {r['number']} says otherwise")
    for numbers in seen.values():
        verdict.check(len(set(numbers)) == len(numbers), f"a CRL number used twice: {numbers}")
        verdict.check(numbers == sorted(numbers), f"CRL numbers out of order: {numbers}")


async def _destinations(
    conn: asyncpg.Connection, directory: Path, moto_url: str | None, verdict: Verdict
) -> None:
    """The newest certificate of each lineage is where it should be, and nowhere else."""
    rows = await conn.fetch(
        """SELECT d.kind, s.status, s.external_id, s.certificate_id, c.lineage_id,
                  c.status AS cert_status, c.certificate_pem,
                  c.encrypted_private_key IS NOT NULL AS managed, a.slug
        FROM certificates c JOIN applications a ON a.id = c.application_id
        CROSS JOIN sync_destinations d
        LEFT JOIN sync_states s ON s.sync_id = d.id AND s.lineage_id = c.lineage_id
        WHERE c.renewed_by_id IS NULL AND d.application_id = c.application_id"""
    )
    states = Counter(f"{r['kind']}:{r['status']}" for r in rows)
    verdict.figures.update({f"sync_{k}": v for k, v in states.items()})
    acm = boto3.session.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x", region_name="eu-west-1"
    ).client("acm", endpoint_url=moto_url or "http://127.0.0.1:9")  # unused without an ACM sync
    wrong = []
    for r in rows:
        live = r["cert_status"] == "active"
        if r["kind"] == "directory":
            ok = _directory_holds(directory / f"{r['slug']}-{r['lineage_id']}", r, live)
        else:
            ok = await asyncio.to_thread(_acm_holds, acm, r, live)
        if not ok:
            wrong.append(
                f"{r['kind']} {r['lineage_id']} state={r['status']} cert={r['cert_status']}"
            )
    verdict.figures["destination_mismatches"] = len(wrong)
    verdict.check(not wrong, f"{len(wrong)} lineages where a destination is wrong: {wrong[:5]}")


def _directory_holds(folder: Path, row: asyncpg.Record, live: bool) -> bool:
    if not live:
        return row["status"] == "removed" and not folder.exists()
    pem = folder / "cert.pem"
    return (
        row["status"] == "succeeded" and pem.exists() and pem.read_text() == row["certificate_pem"]
    )


def _acm_holds(acm: Any, row: asyncpg.Record, live: bool) -> bool:
    if not row["managed"]:  # ACM needs the private key: a CSR certificate is skipped
        return row["status"] == ("skipped" if live else "removed") or row["status"] == "skipped"
    if not live:
        if row["status"] != "removed":
            return False
        try:
            acm.describe_certificate(CertificateArn=row["external_id"])
        except ClientError:
            return True
        return False
    if row["status"] != "succeeded":
        return False
    held = acm.get_certificate(CertificateArn=row["external_id"])["Certificate"]
    return held.strip() == row["certificate_pem"].strip()


async def _announced(nats_url: str, namespace: str) -> dict[str, set[str]]:
    """Certificate ids of every `certificate.issued`/`renewed` and `revoked` event in the stream."""
    subjects = Subjects(namespace)
    client = await nats.connect(server_list(nats_url))
    found: dict[str, set[str]] = {"issued": set(), "revoked": set()}
    try:
        js = client.jetstream()
        info = await js.stream_info(subjects.events_stream)
        sub = await js.subscribe(f"{namespace}.evt.>", ordered_consumer=True)
        for _ in range(info.state.messages):
            msg = await sub.next_msg(timeout=10)
            event = json.loads(msg.data)
            kind = event["type"].split(".")[-2]
            if kind in ("issued", "renewed"):
                found["issued"].add(event["data"]["certificate_id"])
            elif kind == "revoked":
                found["revoked"].add(event["data"]["certificate_id"])
        await sub.unsubscribe()
    finally:
        await client.close()
    return found
