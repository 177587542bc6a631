"""Revocation and CRLs on the real stack: the api records a revocation, the issuer's publisher
(poked by the revoke command) signs the next CRL within seconds, served from storage.

Judged from outside: `openssl crl -CAfile` verifies the signature, `openssl verify
-crl_check_all` with the CRLs of the whole chain rejects the revoked certificate and accepts
the others, pkilint (`lint_crl`) finds no error.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlmodel import col

from admin_kit import API, ClientFor, create_application, problem
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.tables import Crl
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.revocation import RevocationPublisher
from certforge.issuer.settings import IssuerSettings
from issuance_kit import WAIT, Enrollment, enroll, issue, member
from lifecycle_kit import (
    certificate_row,
    crl_listing,
    crl_number,
    crl_numbers,
    crl_pem,
    crl_url,
    current_crl,
    eventually,
    openssl_crl_verify,
    set_certificate,
)
from pki_tools import openssl_verify, pkilint_crl_errors

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# RFC 5280 §5.3.1 CRLReason names, as the API takes them, and the code each must carry
# (None: `unspecified` SHOULD be absent from the entry).
REASONS: dict[str, x509.ReasonFlags | None] = {
    "unspecified": None,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "caCompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}


async def _issue_many(admin: httpx.AsyncClient, e: Enrollment, prefix: str, n: int) -> list[Any]:
    return list(
        await asyncio.gather(
            *(
                issue(
                    admin,
                    e,
                    common_name=f"{prefix}{i}.example.com",
                    sans=[{"type": "dns", "value": f"{prefix}{i}.example.com"}],
                )
                for i in range(n)
            )
        )
    )


def _reason_of(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _lint_crl_cli(crl: x509.CertificateRevocationList) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(crl_pem(crl))
        handle.flush()
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "lint_crl"),
                "lint",
                "-t",
                "CRL",
                "-p",
                "PKIX",
                "-s",
                "ERROR",
                handle.name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


async def test_revoked_certificates_reach_a_crl_that_openssl_and_pkilint_accept(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any
) -> None:
    """Each RFC 5280 reason: the CRL lists the serial with its reason code (none for
    `unspecified`), verifies under the CA, lints clean; with the CRLs of the chain, `openssl
    verify -crl_check_all` rejects each revoked certificate and accepts an unrevoked one."""
    e = await enroll(admin)
    issued = await _issue_many(admin, e, "rv", len(REASONS) + 1)
    keep, revoked = issued[0]["certificate"], [r["certificate"] for r in issued[1:]]
    ca_id = e.issuing["id"]
    started = time.monotonic()
    for cert, reason in zip(revoked, REASONS, strict=True):
        r = await admin.post(f"{e.certificates}/{cert['id']}/revoke", json={"reason": reason})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "revoked", body
        assert body["revocation_reason"] == reason, body
        assert body["revoked_at"] is not None, body
        assert body["renewed_by_id"] is None, body

    crl = await crl_listing(anonymous, ca_id, [c["serial_number"] for c in revoked])
    seconds = time.monotonic() - started
    assert seconds < 10, f"the CRL took {seconds:.1f}s to list the revocations"

    # The entries: every revoked serial with its time and reason, the kept one absent.
    issuing = x509.load_pem_x509_certificate(e.issuing["certificate"].encode())
    assert crl.issuer == issuing.subject
    assert crl.is_signature_valid(issuing.public_key())
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > crl.last_update_utc
    assert crl.get_revoked_certificate_by_serial_number(int(keep["serial_number"], 16)) is None
    for cert, (reason, flag) in zip(revoked, REASONS.items(), strict=True):
        entry = crl.get_revoked_certificate_by_serial_number(int(cert["serial_number"], 16))
        assert entry is not None, cert["serial_number"]
        assert _reason_of(entry) == flag, (reason, _reason_of(entry))
        row = await certificate_row(api_app, cert["id"])
        assert row.revoked_at is not None
        assert entry.revocation_date_utc == row.revoked_at, reason
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest

    # Outside judges: openssl verifies the signature, pkilint (in-process and the CLI) is clean.
    assert "verify OK" in openssl_crl_verify(crl, e.issuing["certificate"])
    assert pkilint_crl_errors(crl_pem(crl)) == "", pkilint_crl_errors(crl_pem(crl))
    cli = _lint_crl_cli(crl)
    assert cli.returncode == 0, cli.stdout + cli.stderr

    # The root's CRL is served too; with both, openssl checks the whole chain.
    root_crl = await current_crl(anonymous, e.root["id"])
    assert "verify OK" in openssl_crl_verify(root_crl, e.root["certificate"])
    assert pkilint_crl_errors(crl_pem(root_crl)) == ""
    crls = [crl_pem(crl), crl_pem(root_crl)]
    chain = [e.issuing["certificate"]]
    openssl_verify(e.root["certificate"], chain, keep["certificate"], crl_pems=crls)
    for cert in revoked:
        with pytest.raises(AssertionError, match="certificate revoked"):
            openssl_verify(e.root["certificate"], chain, cert["certificate"], crl_pems=crls)

    # The PEM form is the same CRL (or a newer one).
    r = await anonymous.get(crl_url(ca_id) + ".pem")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-pem-file")
    pem = x509.load_pem_x509_crl(r.content)
    assert crl_number(pem) >= crl_number(crl)
    assert pem.get_revoked_certificate_by_serial_number(int(revoked[0]["serial_number"], 16))


async def test_crl_is_served_publicly_and_cacheable(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    cert = (await _issue_many(admin, e, "pub", 1))[0]["certificate"]
    ok = await admin.post(f"{e.certificates}/{cert['id']}/revoke", json={})
    assert ok.status_code == 200, ok.text
    await crl_listing(anonymous, e.issuing["id"], [cert["serial_number"]])
    r = await anonymous.get(crl_url(e.issuing["id"]))
    assert r.headers["content-type"] == "application/pkix-crl"
    assert "max-age=" in r.headers["cache-control"]
    assert r.headers.get("etag")
    assert r.headers.get("expires")
    crl = x509.load_der_x509_crl(r.content)
    entry = crl.get_revoked_certificate_by_serial_number(int(cert["serial_number"], 16))
    assert entry is not None
    assert _reason_of(entry) is None

    unknown = uuid4()
    problem(await anonymous.get(f"{API}/cas/{unknown}/crl"), 404, "ca_id")
    problem(await anonymous.get(f"{API}/cas/{unknown}/crl.pem"), 404, "ca_id")


async def test_crl_numbers_increase_and_a_burst_is_coalesced(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any
) -> None:
    """30 revocations at once produce a handful of CRLs, not 30; every CRL number is one more
    than the last, in signing order, and the served CRL always has the highest."""
    e = await enroll(admin)
    ca_id = e.issuing["id"]
    first = (await _issue_many(admin, e, "one", 1))[0]["certificate"]
    r = await admin.post(f"{e.certificates}/{first['id']}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    before = crl_number(await crl_listing(anonymous, ca_id, [first["serial_number"]]))
    rows_before = len(await crl_numbers(api_app, ca_id))

    burst = [r["certificate"] for r in await _issue_many(admin, e, "burst", 30)]
    replies = await asyncio.gather(
        *(
            admin.post(f"{e.certificates}/{c['id']}/revoke", json={"reason": "keyCompromise"})
            for c in burst
        )
    )
    assert [r.status_code for r in replies] == [200] * len(burst), [r.text for r in replies]
    crl = await crl_listing(anonymous, ca_id, [c["serial_number"] for c in burst])
    assert len(list(crl)) == len(burst) + 1

    numbers = await crl_numbers(api_app, ca_id)
    rebuilds = len(numbers) - rows_before
    assert 1 <= rebuilds <= len(burst) // 5, f"{rebuilds} CRLs for {len(burst)} revocations"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert crl_number(crl) == numbers[-1] > before


async def test_crl_is_reissued_before_next_update_and_lists_superseded_certificates(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any
) -> None:
    """Without any revocation, a CRL is signed again once half its validity has passed
    (next_update is never reached); a renewed (superseded but still valid) certificate can be
    revoked and is listed."""
    e = await enroll(admin)
    ca_id = e.issuing["id"]
    cert = (await _issue_many(admin, e, "sup", 1))[0]["certificate"]
    r = await admin.post(f"{e.certificates}/{cert['id']}/renew", headers=WAIT, json={})
    assert r.status_code == 201, r.text
    r = await admin.post(f"{e.certificates}/{cert['id']}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked"
    crl = await crl_listing(anonymous, ca_id, [cert["serial_number"]])
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=24)  # the default

    # Thirteen hours later (of a 24-hour CRL): due again.
    async with api_app.state.certforge.sessions() as session, session.begin():
        await session.exec(
            sa.update(Crl)
            .where(col(Crl.ca_id) == UUID(ca_id))
            .values(this_update=Crl.this_update - timedelta(hours=13))
        )
    settings = IssuerSettings.load()
    assert settings.ca_keks is not None
    assert settings.leaf_keks is not None
    publisher = RevocationPublisher(
        api_app.state.certforge.sessions,
        SignerCache(KeyRing.parse(settings.ca_keks.get_secret_value())),
        KeyRing.parse(settings.leaf_keks.get_secret_value()),
        settings.revocation,
    )
    await publisher.refresh()

    async def reissued() -> x509.CertificateRevocationList | None:
        latest = await current_crl(anonymous, ca_id)
        return latest if crl_number(latest) > crl_number(crl) else None

    fresh = await eventually(reissued, what="a CRL signed before next_update")
    assert fresh.get_revoked_certificate_by_serial_number(int(cert["serial_number"], 16))
    assert fresh.next_update_utc is not None
    assert fresh.next_update_utc >= crl.next_update_utc
    assert "verify OK" in openssl_crl_verify(fresh, e.issuing["certificate"])


async def test_revocation_refusals(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    e = await enroll(admin)
    cert = (await _issue_many(admin, e, "no", 1))[0]["certificate"]
    url = f"{e.certificates}/{cert['id']}/revoke"

    body = problem(await admin.post(url, json={"reason": "stolen"}), 422, "reason")
    assert "keyCompromise" in str(body), body
    problem(await admin.post(url, json={"reason": "removeFromCRL"}), 422, "reason")
    problem(await admin.post(url, json={"reason": "keyCompromise", "extra": 1}), 422)

    # Another tenant: neither through its own application nor through ours.
    other = await create_application(admin)
    outsider = await member(admin, client_for, other["slug"], "operator")
    problem(await outsider.post(url, json={}), 404, "app")
    elsewhere = f"{API}/applications/{other['slug']}/certificates/{cert['id']}/revoke"
    problem(await outsider.post(elsewhere, json={}), 404, "certificate_id")
    problem(await admin.post(elsewhere, json={}), 404, "certificate_id")
    problem(await admin.post(f"{e.certificates}/{uuid4()}/revoke", json={}), 404)
    # Read-only roles may not revoke.
    auditor = await member(admin, client_for, e.app, "auditor")
    problem(await auditor.post(url, json={}), 403)
    assert (await certificate_row(api_app, cert["id"])).status == "active"

    operator = await member(admin, client_for, e.app, "operator")
    r = await operator.post(url, json={"reason": "keyCompromise"})
    assert r.status_code == 200, r.text
    body = problem(await operator.post(url, json={"reason": "superseded"}), 409, "certificate_id")
    assert "keyCompromise" in body["detail"], body
    row = await certificate_row(api_app, cert["id"])
    assert row.revocation_reason == "keyCompromise"  # the first revocation stands

    # An expired certificate is not revoked (and never was on a CRL).
    late = (await _issue_many(admin, e, "late", 1))[0]["certificate"]
    past = datetime.now(UTC) - timedelta(minutes=1)
    await set_certificate(api_app, late["id"], not_after=past)
    problem(await admin.post(f"{e.certificates}/{late['id']}/revoke", json={}), 422)
