"""Helpers shared by the lifecycle integration tests (`test_lifecycle_*.py`).

The database is read (and, to move a certificate through time, written) directly; JetStream
streams are read with ephemeral consumers that never acknowledge, so counting a work-queue
stream's commands leaves them where they were. Waits poll with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
import orjson
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlmodel import col, select

from admin_kit import API
from certforge.common.db.tables import Certificate, Crl

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float = 15.0,  # noqa: ASYNC109 - a deadline for the polling, not for one call
    what: str = "condition",
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached after {timeout:.0f}s"
        await asyncio.sleep(0.1)


# --- the database ----------------------------------------------------------------------------


async def certificate_row(api_app: Any, certificate_id: str | UUID) -> Certificate:
    async with api_app.state.certforge.sessions() as session:
        row: Certificate = (
            await session.exec(
                select(Certificate).where(Certificate.id == UUID(str(certificate_id)))
            )
        ).one()
        return row


async def certificate_rows(api_app: Any, ids: list[str] | list[UUID]) -> list[Certificate]:
    wanted = [UUID(str(i)) for i in ids]
    async with api_app.state.certforge.sessions() as session:
        return list(await session.exec(select(Certificate).where(col(Certificate.id).in_(wanted))))


async def set_certificate(api_app: Any, certificate_id: str | UUID, **values: Any) -> None:
    """Write columns of one certificate (to move it through time or into a state)."""
    async with api_app.state.certforge.sessions() as session, session.begin():
        await session.exec(
            sa.update(Certificate)
            .where(col(Certificate.id) == UUID(str(certificate_id)))
            .values(**values)
        )


async def crl_numbers(api_app: Any, ca_id: str) -> list[int]:
    """Numbers of every CRL the issuer stored for `ca_id`, in the order they were signed."""
    async with api_app.state.certforge.sessions() as session:
        rows = await session.exec(
            select(Crl.number).where(Crl.ca_id == UUID(ca_id)).order_by(col(Crl.created_at))
        )
        return list(rows)


# --- JetStream -------------------------------------------------------------------------------


async def stream_messages(
    js: JetStreamContext, stream: str, subject: str, settle: float = 0.3
) -> list[dict[str, Any]]:
    """Every message of `stream` on `subject` (wildcards allowed), decoded, oldest first.

    An ephemeral pull consumer that never acknowledges: a work-queue stream keeps its messages.
    """
    name = f"test_{uuid4().hex}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=-1,
            inactive_threshold=60.0,
        ),
    )
    out: list[dict[str, Any]] = []
    try:
        subscription = await js.pull_subscribe_bind(name, stream)
        while True:
            try:
                batch = await subscription.fetch(1000, timeout=settle)
            except (TimeoutError, NatsTimeoutError):
                break
            out.extend(orjson.loads(m.data) for m in batch)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    finally:
        # A work-queue stream allows one consumer per subject: remove it, do not wait it out.
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
    return out


async def count_on_subject(js: JetStreamContext, stream: str, subject: str) -> int:
    """Messages stored in `stream` on `subject` (no consumer involved)."""
    info = await js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


# --- CRLs ------------------------------------------------------------------------------------


def crl_url(ca_id: str) -> str:
    return f"{API}/cas/{ca_id}/crl"


async def current_crl(client: httpx.AsyncClient, ca_id: str) -> x509.CertificateRevocationList:
    r = await client.get(crl_url(ca_id))
    assert r.status_code == 200, r.text
    return x509.load_der_x509_crl(r.content)


async def crl_listing(
    client: httpx.AsyncClient,
    ca_id: str,
    serials: list[str],
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the polling
) -> x509.CertificateRevocationList:
    """Poll the CA's CRL until it lists every serial (hex); return it."""

    async def probe() -> x509.CertificateRevocationList | None:
        r = await client.get(crl_url(ca_id))
        if r.status_code != 200:
            return None
        crl = x509.load_der_x509_crl(r.content)
        listed = {format(e.serial_number, "x") for e in crl}
        return crl if {s.lower() for s in serials} <= listed else None

    return await eventually(probe, timeout, f"CRL of {ca_id} listing {len(serials)} serial(s)")


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(Encoding.PEM).decode("ascii")


def openssl_crl_verify(crl: x509.CertificateRevocationList, ca_pem: str) -> str:
    """`openssl crl -inform DER -in crl.der -CAfile ca.pem -noout`: its output ('verify OK')."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "crl.der").write_bytes(crl.public_bytes(Encoding.DER))
        (folder / "ca.pem").write_text(ca_pem)
        result = subprocess.run(
            [
                "openssl",
                "crl",
                "-inform",
                "DER",
                "-in",
                str(folder / "crl.der"),
                "-CAfile",
                str(folder / "ca.pem"),
                "-noout",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    return result.stdout + result.stderr
