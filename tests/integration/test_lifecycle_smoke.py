"""Lifecycle smoke: renew (manual and by the renewer's scan), revoke, CRL."""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from issuance_kit import enroll, issue
from sqlmodel import select

from certforge.common.db.tables import Certificate

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_renew_revoke_crl(admin: httpx.AsyncClient, api_app: Any, issuer: Any) -> None:
    e = await enroll(admin)
    first = await issue(admin, e, common_name="api.example.com",
                        sans=[{"type": "dns", "value": "api.example.com"}], ttl="3d")
    cid = first["certificate"]["id"]
    r = await admin.post(f"{e.certificates}/{cid}/renew", headers={"Prefer": "wait=10"}, json={})
    assert r.status_code == 201, r.text
    second = r.json()["certificate"]["id"]
    old = (await admin.get(f"{e.certificates}/{cid}")).json()
    new = (await admin.get(f"{e.certificates}/{second}")).json()
    assert old["status"] == "renewed" and old["renewed_by_id"] == second
    assert new["renewed_from_id"] == cid and new["sans"] == old["sans"]
    assert (await admin.post(f"{e.certificates}/{cid}/renew", json={})).status_code == 409

    # the renewer's scan finds the new one once it is due
    from certforge.renewer.scan import RenewalScanner
    from certforge.renewer.settings import ScanSettings

    context = api_app.state.certforge
    scanner = RenewalScanner(context.sessions, context.subjects, ScanSettings(), context.relay.wake)
    result = await scanner.scan(datetime.now(UTC) + timedelta(days=2, hours=12))
    assert result.renewals >= 1
    async with context.sessions() as session:
        row = (await session.exec(select(Certificate).where(Certificate.id == second))).one()
        assert row.renewing_request_id is not None

    r = await admin.post(f"{e.certificates}/{second}/revoke", json={"reason": "keyCompromise"})
    assert r.status_code == 200, r.text
    assert (await admin.post(f"{e.certificates}/{second}/revoke", json={})).status_code == 409
    await issuer.revocation_publisher.refresh() if hasattr(issuer, "revocation_publisher") else None
    import asyncio

    for _ in range(40):
        crl = await admin.get(f"/api/v1/cas/{e.issuing['id']}/crl")
        if crl.status_code == 200 and x509.load_der_x509_crl(crl.content).get_revoked_certificate_by_serial_number(int(new["serial_number"], 16)):
            break
        await asyncio.sleep(0.5)
    parsed = x509.load_der_x509_crl(crl.content)
    assert parsed.get_revoked_certificate_by_serial_number(int(new["serial_number"], 16))
    with tempfile.TemporaryDirectory() as d:
        Path(d, "crl.der").write_bytes(crl.content)
        Path(d, "ca.pem").write_text(e.issuing["certificate"])
        out = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", f"{d}/crl.der", "-CAfile", f"{d}/ca.pem", "-noout"], capture_output=True, text=True)
        assert "verify OK" in out.stdout + out.stderr, out
