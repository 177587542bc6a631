"""The renewer on the real stack: server-driven renewal, concurrent replicas, expiry.

1. A running `certforge-renewer` process (scanning every second) renews short-lived
   certificates by itself, through the session's issuer: lineage, identity, validity, a new
   key, one `certificate.renewed` event per renewal; SIGTERM stops it cleanly.
2. Two renewer processes (and, deterministically, two scanners interleaved in one event loop)
   over the same 2,000 due certificates claim each exactly once: 2,000 requests, 2,000 renew
   commands. They run in a NATS namespace of their own that no issuer consumes, so claims are
   counted, not signed.
3. Expiry: `mark_expired` flips certificates past `not_after`; `certificate.expiring` is
   announced once per certificate per threshold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy import func
from sqlmodel import col, select

from certforge.common.contracts.subjects import Subjects
from certforge.common.db.tables import Certificate, CertificateRequest
from certforge.common.messaging import delete_streams, ensure_streams
from certforge.common.settings import NatsSettings
from certforge.devstack import free_port
from certforge.renewer.scan import RenewalScanner
from certforge.renewer.settings import ScanSettings
from harness import Backends
from issuance_kit import WAIT, Enrollment, check_issued, eku_names, enroll, issue, sans_of, spki
from lifecycle_kit import (
    certificate_row,
    certificate_rows,
    count_on_subject,
    eventually,
    set_certificate,
    stream_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

BIN = Path(sys.executable).parent
DUE = 2000


# --- renewer processes -------------------------------------------------------------------------


@dataclass
class Renewer:
    popen: subprocess.Popen[bytes]
    log: Path
    port: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def renewals_requested(self) -> int:
        """Claims this process reported (`scan: N renewals requested` lines)."""
        return sum(int(n) for n in re.findall(r"scan: (\d+) renewals requested", self.output()))

    async def ready(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if self.popen.poll() is not None:
                    pytest.fail(f"renewer exited with {self.popen.returncode}:\n{self.output()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(url)).status_code == 200:
                        return
                assert time.monotonic() < deadline, f"renewer not ready:\n{self.output()[-3000:]}"
                await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 15.0) -> int:  # noqa: ASYNC109
        """SIGTERM; the exit code."""
        self.popen.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"renewer still running {timeout:.0f}s after SIGTERM:\n{self.output()}")


@pytest_asyncio.fixture(loop_scope="session")
async def start_renewer(
    backends: Backends, tmp_path: Path
) -> AsyncIterator[Callable[..., Renewer]]:
    """`start_renewer(**env)`: a `certforge-renewer` process on the session's backends (plus
    `env`), scanning every second; killed at the end if still running."""
    started: list[Renewer] = []

    def start(**extra: str) -> Renewer:
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")}
        env = {
            **base,
            **backends.env(
                CERTFORGE_RENEWER__INTERVAL="1s",
                CERTFORGE_HEALTH_PORT=str(port),
                **extra,
            ),
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / f"renewer-{len(started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(BIN / "certforge-renewer")],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        renewer = Renewer(popen, log, port)
        started.append(renewer)
        return renewer

    yield start
    for renewer in started:
        if renewer.popen.poll() is None:
            renewer.popen.kill()
            renewer.popen.wait(5)


# --- 1. auto-renewal by a running renewer ------------------------------------------------------


async def test_running_renewer_renews_short_lived_certificates(
    admin: httpx.AsyncClient, api_app: Any, start_renewer: Callable[..., Renewer]
) -> None:
    """30-second certificates are due after 20 s (two thirds of their life); a renewer
    scanning every second renews each once, through the issuer, before it expires."""
    e = await enroll(admin)
    keys = ["EC_P256", "RSA_2048", "ED25519"]
    firsts = await asyncio.gather(
        *(
            issue(
                admin,
                e,
                common_name=f"auto{i}.example.com",
                sans=[
                    {"type": "dns", "value": f"auto{i}.example.com"},
                    {"type": "ip", "value": f"10.0.0.{i + 1}"},
                ],
                key_algorithm=key,
                ttl="30s",
                metadata={"n": str(i), "team": "auto"},
            )
            for i, key in enumerate(keys)
        )
    )
    old_ids = [f["certificate"]["id"] for f in firsts]
    for row in await certificate_rows(api_app, old_ids):
        assert row.renew_at == row.not_before + timedelta(seconds=20), row

    renewer = start_renewer()
    await renewer.ready()

    async def all_renewed() -> list[Certificate] | None:
        rows = await certificate_rows(api_app, old_ids)
        return rows if all(r.renewed_by_id for r in rows) else None

    try:
        await eventually(all_renewed, timeout=45, what="automatic renewal of every certificate")
    except AssertionError:
        rows = await certificate_rows(api_app, old_ids)
        pytest.fail(f"not renewed: {rows}\nrenewer:\n{renewer.output()[-4000:]}")
    renewed_at = datetime.now(UTC)
    assert await renewer.stop() == 0, renewer.output()[-3000:]
    output = renewer.output()
    assert "renewer stopped" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert renewer.renewals_requested() >= len(old_ids)

    context = api_app.state.certforge
    subject = context.subjects.event(e.app, "certificate.renewed")
    js = context.nats.jetstream()
    stream = context.subjects.events_stream

    async def announced() -> bool:
        return await count_on_subject(js, stream, subject) >= len(old_ids)

    await eventually(announced, what="certificate.renewed events")
    events = await stream_messages(js, stream, subject)
    assert len(events) == len(old_ids), [ev["data"]["certificate_id"] for ev in events]

    olds = {str(r.id): r for r in await certificate_rows(api_app, old_ids)}
    new_ids = [str(olds[i].renewed_by_id) for i in old_ids]
    news = {str(r.id): r for r in await certificate_rows(api_app, new_ids)}
    assert {ev["data"]["certificate_id"] for ev in events} == set(new_ids)
    assert {ev["data"]["renewed_from_id"] for ev in events} == set(old_ids)
    for first, old_id, new_id in zip(firsts, old_ids, new_ids, strict=True):
        old, new = olds[old_id], news[new_id]
        # lineage both ways; the old one is superseded, not revoked
        assert old.status == "renewed", old
        assert old.revoked_at is None, old
        assert old.renewing_request_id is None
        assert old.renewal_error is None
        assert new.status == "active", new
        assert str(new.renewed_from_id) == old_id, new
        assert old.not_after > renewed_at - timedelta(seconds=5), "renewed before it expired"
        # same everything but the key, serial and dates
        for name in (
            "application_id",
            "profile_id",
            "ca_id",
            "subject_dn",
            "sans",
            "key_algorithm",
            "tags",
            "auto_renew",
            "renew_before_days",
            "method",
        ):
            assert getattr(new, name) == getattr(old, name), name
        assert new.not_after - new.not_before == old.not_after - old.not_before
        assert new.not_after - new.not_before == timedelta(seconds=30)
        assert new.renew_at == new.not_before + timedelta(seconds=20)
        old_cert = x509.load_pem_x509_certificate(old.certificate_pem.encode())
        new_cert = x509.load_pem_x509_certificate(new.certificate_pem.encode())
        assert spki(new_cert.public_key()) != spki(old_cert.public_key()), "a new key"
        assert new_cert.subject == old_cert.subject
        assert sans_of(new_cert) == sans_of(old_cert)
        assert eku_names(new_cert) == eku_names(old_cert)
        assert (
            new_cert.extensions.get_extension_for_class(x509.KeyUsage).value
            == old_cert.extensions.get_extension_for_class(x509.KeyUsage).value
        )
        assert first["certificate"]["serial_number"] != new.serial_number
        # the renewal went through a request of its own, which made one certificate
        request = await admin.get(f"{e.requests}/{new.request_id}")
        assert request.status_code == 200, request.text
        body = request.json()
        assert body["kind"] == "renew", body
        assert body["status"] == "issued", body
        check_issued(body["certificate"], e)

    async with context.sessions() as session:
        requests = list(
            await session.exec(
                select(CertificateRequest).where(
                    col(CertificateRequest.renewal_of_id).in_([UUID(i) for i in old_ids])
                )
            )
        )
        per_request = (
            await session.exec(
                select(Certificate.request_id, func.count())
                .where(col(Certificate.request_id).in_([r.id for r in requests]))
                .group_by(col(Certificate.request_id))
            )
        ).all()
    assert len(requests) == len(old_ids), "one renewal request per certificate"
    assert sorted(str(r.renewal_of_id) for r in requests) == sorted(old_ids)
    assert all(r.status == "issued" and r.requested_by is None for r in requests)
    assert sorted(n for _, n in per_request) == [1] * len(old_ids), per_request

    # Stop the successors from being renewed (or expired) under later tests' feet.
    for new_id in new_ids:
        await set_certificate(api_app, new_id, auto_renew=False)


# --- 2. replicas: every due certificate claimed once -------------------------------------------


@dataclass
class DueSet:
    enrollment: Enrollment
    ids: list[UUID]
    subjects: Subjects


async def _insert_due(api_app: Any, e: Enrollment, count: int) -> list[UUID]:
    """`count` certificates due since a minute ago, as the issuer would have stored them
    (managed key, auto-renew on, active CA), each with its own issue request."""
    now = datetime.now(UTC).replace(microsecond=0)
    app_id, profile_id, ca_id = UUID(e.app_id), UUID(e.profile_id), UUID(e.issuing["id"])
    request_ids = [uuid4() for _ in range(count)]
    ids = [uuid4() for _ in range(count)]
    requests = [
        {
            "id": request_id,
            "application_id": app_id,
            "profile_id": profile_id,
            "method": "managed",
            "kind": "issue",
            "status": "issued",
            "params": {"method": "managed"},
            "error_details": [],
            "certificate_id": certificate_id,
            "created_at": now - timedelta(days=30),
        }
        for request_id, certificate_id in zip(request_ids, ids, strict=True)
    ]
    certificates = [
        {
            "id": certificate_id,
            "application_id": app_id,
            "profile_id": profile_id,
            "ca_id": ca_id,
            "request_id": request_id,
            "serial_number": secrets.token_hex(16),
            "common_name": f"due{n}.example.com",
            "subject_dn": f"CN=due{n}.example.com",
            "sans": [{"type": "dns", "value": f"due{n}.example.com"}],
            "key_algorithm": "EC_P256",
            "method": "managed",
            "not_before": now - timedelta(days=30),
            "not_after": now + timedelta(days=60),
            "status": "active",
            "certificate_pem": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "fingerprint_sha256": secrets.token_hex(32),
            "encrypted_private_key": b"not-a-real-key",
            "key_kek_id": "test",
            "tags": {},
            "auto_renew": True,
            "renew_before_days": 60,
            "renew_at": now - timedelta(minutes=1),
            "renewal_attempts": 0,
            "created_at": now - timedelta(days=30),
            "updated_at": now - timedelta(days=30),
        }
        for n, (certificate_id, request_id) in enumerate(zip(ids, request_ids, strict=True))
    ]
    async with api_app.state.certforge.sessions() as session, session.begin():
        await session.exec(sa.insert(CertificateRequest), params=requests)
        await session.exec(sa.insert(Certificate), params=certificates)
    return ids


async def _delete_due(api_app: Any, e: Enrollment) -> None:
    """Remove the synthetic certificates and their requests: other tests share the database."""
    app_id = UUID(e.app_id)
    async with api_app.state.certforge.sessions() as session, session.begin():
        await session.exec(sa.delete(Certificate).where(col(Certificate.application_id) == app_id))
        await session.exec(
            sa.delete(CertificateRequest).where(col(CertificateRequest.application_id) == app_id)
        )


@pytest_asyncio.fixture(loop_scope="session")
async def due_set(
    admin: httpx.AsyncClient, api_app: Any, backends: Backends
) -> AsyncIterator[DueSet]:
    """A fresh CA/application and a NATS namespace nobody consumes; cleaned up afterwards."""
    e = await enroll(admin)
    subjects = Subjects(f"{backends.namespace}_r{secrets.token_hex(3)}")
    js = api_app.state.certforge.nats.jetstream()
    # The api's relay publishes every outbox row, whichever service wrote it: the streams of
    # this namespace must exist before any command is enqueued to it.
    await ensure_streams(js, subjects, NatsSettings(namespace=subjects.namespace))
    due = DueSet(e, [], subjects)
    try:
        yield due
    finally:
        await _delete_due(api_app, e)
        await delete_streams(js, subjects, NatsSettings())  # the sync stream too


async def _check_claimed_once(api_app: Any, due: DueSet) -> None:
    """Every certificate of `due` claimed by exactly one renew request, and exactly one renew
    command per certificate in the namespace's commands stream."""
    ids = set(due.ids)
    async with api_app.state.certforge.sessions() as session:
        requests = list(
            await session.exec(
                select(CertificateRequest).where(
                    CertificateRequest.application_id == UUID(due.enrollment.app_id),
                    CertificateRequest.kind == "renew",
                )
            )
        )
        rows = await session.exec(
            select(Certificate.id, Certificate.renewing_request_id).where(
                col(Certificate.id).in_(due.ids)
            )
        )
        claims = dict(rows.all())
    assert len(requests) == DUE, f"{len(requests)} renew requests for {DUE} certificates"
    assert {r.renewal_of_id for r in requests} == ids, "each certificate renewed once"
    assert all(r.status == "pending" for r in requests)
    assert None not in claims.values(), "every certificate claimed"
    assert len(set(claims.values())) == DUE
    assert {r.renewal_of_id: r.id for r in requests} == claims, "the claim is its request"

    js = api_app.state.certforge.nats.jetstream()
    stream, subject = due.subjects.commands_stream, due.subjects.cmd_renew

    async def published() -> bool:
        return await count_on_subject(js, stream, subject) >= DUE

    await eventually(published, timeout=30, what=f"{DUE} renew commands")
    commands = [
        m["data"]
        for m in await stream_messages(js, stream, subject)
        if UUID(m["data"]["certificate_id"]) in ids
    ]
    assert len(commands) == DUE, f"{len(commands)} renew commands"
    assert {UUID(c["certificate_id"]): UUID(c["request_id"]) for c in commands} == claims


async def test_two_renewer_processes_claim_each_due_certificate_once(
    api_app: Any, due_set: DueSet, start_renewer: Callable[..., Renewer]
) -> None:
    env = {
        "CERTFORGE_NATS__NAMESPACE": due_set.subjects.namespace,
        "CERTFORGE_RENEWER__BATCH_SIZE": "100",
    }
    renewers = [start_renewer(**env), start_renewer(**env)]
    await asyncio.gather(*(r.ready() for r in renewers))
    due_set.ids = await _insert_due(api_app, due_set.enrollment, DUE)
    started = time.monotonic()

    async def all_claimed() -> bool:
        rows = await certificate_rows(api_app, due_set.ids)
        return all(r.renewing_request_id is not None for r in rows)

    await eventually(all_claimed, timeout=30, what=f"claims of {DUE} certificates")
    claimed_in = time.monotonic() - started
    await _check_claimed_once(api_app, due_set)
    codes = await asyncio.gather(*(r.stop() for r in renewers))
    assert codes == [0, 0], [r.output()[-2000:] for r in renewers]
    shares = [r.renewals_requested() for r in renewers]
    assert sum(shares) >= DUE, shares
    print(f"two renewer processes: {DUE} claimed in {claimed_in:.1f}s, shares {shares}")


async def test_two_interleaved_scanners_claim_each_due_certificate_once(
    api_app: Any, due_set: DueSet
) -> None:
    """Both scanners run their batches at the same time in one event loop, on separate
    connections, so their `FOR UPDATE SKIP LOCKED` selections really overlap."""
    context = api_app.state.certforge
    settings = ScanSettings(batch_size=50, expiry_thresholds=[])
    scanners = [
        RenewalScanner(context.sessions, due_set.subjects, settings, context.relay.wake)
        for _ in range(2)
    ]
    due_set.ids = await _insert_due(api_app, due_set.enrollment, DUE)
    now = datetime.now(UTC)
    started = time.monotonic()
    first, second = await asyncio.gather(*(s.scan(now) for s in scanners))
    took = time.monotonic() - started
    assert first.renewals > 0, (first, second)
    assert second.renewals > 0, (first, second)
    assert first.renewals + second.renewals >= DUE, (first, second)
    await _check_claimed_once(api_app, due_set)
    # A third scan finds nothing left of them.
    await scanners[0].scan(datetime.now(UTC))
    await _check_claimed_once(api_app, due_set)
    print(f"two scanners: {DUE} claimed in {took:.1f}s, {first.renewals}+{second.renewals}")


# --- 3. expiry ---------------------------------------------------------------------------------


def _ids(issued: list[dict[str, Any]]) -> list[str]:
    return [r["certificate"]["id"] for r in issued]


async def test_mark_expired_flips_certificates_past_not_after(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    e = await enroll(admin)
    issued = [await issue(admin, e, common_name=f"x{i}.example.com", ttl="2d") for i in range(4)]
    active, renewed, revoked, current = (r["certificate"]["id"] for r in issued)
    r = await admin.post(f"{e.certificates}/{renewed}/renew", headers=WAIT, json={})
    assert r.status_code == 201, r.text
    successor = r.json()["certificate"]["id"]
    r = await admin.post(f"{e.certificates}/{revoked}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    past = datetime.now(UTC) - timedelta(seconds=1)
    for certificate_id in (active, renewed, revoked):
        await set_certificate(api_app, certificate_id, not_after=past)

    context = api_app.state.certforge
    scanner = RenewalScanner(context.sessions, context.subjects, ScanSettings(), context.relay.wake)
    assert await scanner.mark_expired(datetime.now(UTC)) >= 2
    status = {str(c.id): c.status for c in await certificate_rows(api_app, _ids(issued))}
    assert status[active] == "expired"
    assert status[renewed] == "expired"  # superseded, then expired
    assert status[revoked] == "revoked"  # stays revoked
    assert status[current] == "active"
    assert (await certificate_row(api_app, successor)).status == "active"
    r = await admin.get(f"{e.certificates}/{active}")
    assert r.json()["status"] == "expired"
    # Expired certificates are neither renewed nor revoked.
    r = await admin.post(f"{e.certificates}/{active}/renew", json={})
    assert r.status_code == 422, r.text
    await scanner.mark_expired(datetime.now(UTC))  # again: nothing changes for these
    status = {str(c.id): c.status for c in await certificate_rows(api_app, _ids(issued))}
    assert status == {active: "expired", renewed: "expired", revoked: "revoked", current: "active"}


async def test_expiring_is_announced_once_per_threshold(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    """Thresholds 30d, 7d and 1d. The certificates are moved 50 years ahead, and the scans
    run at instants around their expiry, so no other certificate of the session is touched."""
    e = await enroll(admin)
    issued = [await issue(admin, e, common_name=f"exp{i}.example.com", ttl="2d") for i in range(4)]
    walker, late, revoked, renewed = _ids(issued)
    r = await admin.post(f"{e.certificates}/{revoked}/revoke", json={})
    assert r.status_code == 200, r.text
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365 * 50)
    late_end = end + timedelta(days=1000)
    for certificate_id, not_after in (
        (walker, end),
        (late, late_end),
        (revoked, end),
        (renewed, end),
    ):
        await set_certificate(
            api_app,
            certificate_id,
            not_before=not_after - timedelta(days=90),
            not_after=not_after,
            renew_at=not_after - timedelta(days=10),
            auto_renew=False,
        )
    await set_certificate(api_app, renewed, status="renewed")

    context = api_app.state.certforge
    scanner = RenewalScanner(context.sessions, context.subjects, ScanSettings(), context.relay.wake)
    js = context.nats.jetstream()
    stream = context.subjects.events_stream
    subject = context.subjects.event(e.app, "certificate.expiring")

    async def announce(now: datetime) -> int:
        total = 0
        while (n := await scanner.announce_expiring(now)) > 0:
            total += n
        return total

    async def notices(expected: int) -> list[tuple[str, str]]:
        async def enough() -> bool:
            return await count_on_subject(js, stream, subject) >= expected

        await eventually(enough, what=f"{expected} certificate.expiring events")
        events = await stream_messages(js, stream, subject)
        assert len(events) == expected, [ev["data"] for ev in events]
        return [(ev["subject"], ev["data"]["threshold"]) for ev in events]

    assert await announce(end - timedelta(days=40)) == 0
    assert await announce(end - timedelta(days=20)) == 1
    assert await notices(1) == [(walker, "30d")]
    assert (await certificate_row(api_app, walker)).expiry_notified_days == 30
    assert await announce(end - timedelta(days=20)) == 0, "the same instant again: nothing"
    assert await announce(end - timedelta(days=19)) == 0, "no new threshold crossed"
    assert await announce(end - timedelta(days=6)) == 1
    assert await announce(end - timedelta(hours=12)) == 1
    assert await announce(end - timedelta(hours=1)) == 0
    assert await announce(end + timedelta(seconds=1)) == 0, "expired: not expiring"
    # `late` is first seen 5 days before its expiry: one notice, at the smallest threshold.
    assert await announce(late_end - timedelta(days=5)) == 1
    assert await announce(late_end - timedelta(days=5)) == 0
    assert await announce(late_end - timedelta(hours=2)) == 1
    got = await notices(5)
    assert got == [
        (walker, "30d"),
        (walker, "7d"),
        (walker, "1d"),
        (late, "7d"),
        (late, "1d"),
    ], got
    events = await stream_messages(js, stream, subject)
    data = events[0]["data"]
    assert data["certificate_id"] == walker
    assert data["application"] == e.app
    assert datetime.fromisoformat(data["not_after"].replace("Z", "+00:00")) == end
    assert (await certificate_row(api_app, walker)).expiry_notified_days == 1
