"""Manual renewal, failed renewals and renewal settings on the real stack (api + issuer).

A renewal is a certificate request of kind `renew`: the successor has the old certificate's
subject, SANs, usages, profile, metadata and renewal settings, the original validity (capped by
the policy as it is now), a new key unless asked otherwise; the old certificate becomes
`renewed` (still valid, not revoked) and `certificate.renewed` is announced once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from cryptography import x509
from sqlmodel import col, select

from admin_kit import API, ClientFor, create_application, ok, problem
from certforge.common.contracts.commands import RenewCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import generate_private_key, load_private_key_pem
from certforge.common.db.tables import CertificateRequest
from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.common.outbox import enqueue
from certforge.common.template import San
from certforge.renewer.scan import RenewalScanner
from certforge.renewer.settings import ScanSettings
from issuance_kit import (
    WAIT,
    Enrollment,
    check_issued,
    eku_names,
    enroll,
    issue,
    member,
    poll_until_done,
    sans_of,
    spki,
)
from lifecycle_kit import (
    certificate_row,
    crl_listing,
    eventually,
    set_certificate,
    stream_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

HOST = "renew.example.com"


def _fields(host: str = HOST, **more: Any) -> dict[str, Any]:
    return {"common_name": host, "sans": [{"type": "dns", "value": host}], **more}


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _validity(cert: x509.Certificate) -> timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def _usages(cert: x509.Certificate) -> tuple[x509.KeyUsage, set[str]]:
    return cert.extensions.get_extension_for_class(x509.KeyUsage).value, eku_names(cert)


def _csr(key: Any, host: str = HOST) -> str:
    return csr_to_pem(
        build_csr(key, SubjectFields(common_name=host), [San(type="dns", value=host)])
    )


async def _renew(
    client: httpx.AsyncClient, e: Enrollment, certificate_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{e.certificates}/{certificate_id}/renew", headers=WAIT, json=body or None
    )


async def _renewed(
    client: httpx.AsyncClient, e: Enrollment, certificate_id: str, **body: Any
) -> dict[str, Any]:
    """Renew with `Prefer: wait`; assert 201 and return the request with its certificate."""
    r = await _renew(client, e, certificate_id, **body)
    assert r.status_code == 201, r.text
    request: dict[str, Any] = r.json()
    assert request["kind"] == "renew", request
    assert request["status"] == "issued", request
    return request


async def _details(client: httpx.AsyncClient, e: Enrollment, certificate_id: str) -> Any:
    return ok(await client.get(f"{e.certificates}/{certificate_id}"))


async def _events(api_app: Any, app: str, name: str) -> list[dict[str, Any]]:
    context = api_app.state.certforge
    return await stream_messages(
        context.nats.jetstream(), context.subjects.events_stream, context.subjects.event(app, name)
    )


# --- manual renewal ----------------------------------------------------------------------------


async def test_manual_renewal_with_a_new_key_keeps_everything_else(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    e = await enroll(admin)
    first = await issue(
        admin,
        e,
        **_fields(),
        ttl="20d",
        key_algorithm="RSA_2048",
        key_usages=["digital_signature", "key_encipherment"],
        extended_key_usages=["server_auth", "client_auth"],
        metadata={"team": "payments", "env": "prod"},
    )
    old_id = first["certificate"]["id"]
    request = await _renewed(admin, e, old_id)
    new_id = request["certificate"]["id"]
    assert request["certificate"]["private_key"], "a new managed key is returned to the admin"
    new_cert = check_issued(request["certificate"], e)
    old_cert = _cert(first["certificate"]["certificate"])

    # Same identity and usages, the original validity, a fresh key and serial.
    assert new_cert.subject == old_cert.subject
    assert sans_of(new_cert) == sans_of(old_cert) == [("dns", HOST)]
    assert _usages(new_cert) == _usages(old_cert)
    assert _validity(new_cert) == _validity(old_cert) == timedelta(days=20)
    assert spki(new_cert.public_key()) != spki(old_cert.public_key())
    assert new_cert.serial_number != old_cert.serial_number

    # Lineage both ways; the old one stays valid (renewed, not revoked).
    old, new = await _details(admin, e, old_id), await _details(admin, e, new_id)
    assert old["status"] == "renewed", old
    assert old["renewed_by_id"] == new_id, old
    assert old["revoked_at"] is None
    assert new["status"] == "active", new
    assert new["renewed_from_id"] == old_id, new
    for name in ("profile", "metadata", "auto_renew", "renew_before_days", "key_algorithm"):
        assert new[name] == old[name], name
    assert new["metadata"] == {"team": "payments", "env": "prod"}
    row = await certificate_row(api_app, old_id)
    assert row.renewing_request_id is None
    assert row.renewal_error is None

    # Announced once, with both ids.
    events = await eventually(
        lambda: _events(api_app, e.app, "certificate.renewed"), what="certificate.renewed"
    )
    assert len(events) == 1, events
    data = events[0]["data"]
    assert data["certificate_id"] == new_id
    assert data["renewed_from_id"] == old_id
    assert data["request_id"] == request["id"]
    assert "private_key" not in str(events[0])

    # Renewed once only.
    body = problem(await _renew(admin, e, old_id), 409, "certificate_id")
    assert new_id in body["detail"], body


async def test_renewal_without_waiting_is_accepted_then_completes(
    admin: httpx.AsyncClient,
) -> None:
    e = await enroll(admin)
    first = await issue(admin, e, **_fields(), ttl="2d")
    r = await admin.post(f"{e.certificates}/{first['certificate']['id']}/renew", json={})
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "renew"
    assert r.json()["status"] == "pending"
    done = await poll_until_done(admin, r.headers["location"])
    assert done["status"] == "issued", done
    assert done["certificate"]["id"] != first["certificate"]["id"]


async def test_managed_certificate_renews_with_reused_key_or_a_csr(
    admin: httpx.AsyncClient,
) -> None:
    """`reuse` certifies the same managed key again; `csr` with `same_key` insists on it;
    `csr` alone takes the caller's key (the successor is then a CSR certificate)."""
    e = await enroll(admin)
    first = await issue(admin, e, **_fields(), ttl="10d")
    old_key = load_private_key_pem(first["certificate"]["private_key"])

    reused = await _renewed(admin, e, first["certificate"]["id"], key="reuse")
    cert = check_issued(reused["certificate"], e)
    assert spki(cert.public_key()) == spki(old_key.public_key())
    assert reused["certificate"]["private_key"], "the reused key is still ours to hand out"
    reused_id = reused["certificate"]["id"]
    assert (await _details(admin, e, reused_id))["has_private_key"] is True

    # same_key with another key: refused, naming the CSR; the certificate stays renewable.
    stranger = _csr(generate_private_key(KeyAlgorithm.EC_P256))
    problem(await _renew(admin, e, reused_id, key="csr", csr=stranger, same_key=True), 422, "csr")
    same = await _renewed(admin, e, reused_id, key="csr", csr=_csr(old_key), same_key=True)
    cert = check_issued(same["certificate"], e)
    assert spki(cert.public_key()) == spki(old_key.public_key())
    assert same["certificate"]["private_key"] is None

    # A new key by CSR: the caller's key, no private key with us, no auto-renewal.
    client_key = generate_private_key(KeyAlgorithm.EC_P384)
    moved = await _renewed(admin, e, same["certificate"]["id"], key="csr", csr=_csr(client_key))
    cert = check_issued(moved["certificate"], e)
    assert spki(cert.public_key()) == spki(client_key.public_key())
    details = await _details(admin, e, moved["certificate"]["id"])
    assert details["method"] == "csr", details
    assert details["has_private_key"] is False, details
    assert details["key_algorithm"] == "EC_P384"
    assert details["auto_renew"] is False
    assert sans_of(cert) == [("dns", HOST)]


async def test_csr_certificate_renews_only_with_a_csr(admin: httpx.AsyncClient) -> None:
    e = await enroll(admin)
    key = generate_private_key(KeyAlgorithm.EC_P256)
    first = await issue(admin, e, method="csr", csr=_csr(key), ttl="5d")
    cid = first["certificate"]["id"]
    problem(await _renew(admin, e, cid), 422, "key")
    problem(await _renew(admin, e, cid, key="new"), 422, "key")
    problem(await _renew(admin, e, cid, key="reuse"), 422, "key")
    problem(await _renew(admin, e, cid, key="csr"), 422)  # no CSR with key: csr
    problem(await _renew(admin, e, cid, csr=_csr(key)), 422)  # a CSR without key: csr
    problem(await _renew(admin, e, cid, key="csr", csr="not a csr"), 400, "csr")

    renewed = await _renewed(admin, e, cid, key="csr", csr=_csr(key), same_key=True)
    cert = check_issued(renewed["certificate"], e)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert _validity(cert) == timedelta(days=5)
    assert (await _details(admin, e, cid))["status"] == "renewed"


async def test_renewal_refusals(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    e = await enroll(admin)
    issued = [await issue(admin, e, **_fields(f"r{i}.example.com")) for i in range(3)]
    revoked, busy, expired = (r["certificate"]["id"] for r in issued)

    r = await admin.post(f"{e.certificates}/{revoked}/revoke", json={"reason": "superseded"})
    assert r.status_code == 200, r.text
    problem(await _renew(admin, e, revoked), 409, "certificate_id", detail_contains="revoked")

    in_flight = uuid4()
    await set_certificate(api_app, busy, renewing_request_id=in_flight)
    body = problem(await _renew(admin, e, busy), 409, "certificate_id")
    assert "in progress" in body["detail"], body
    assert str(in_flight) in body["detail"], body
    await set_certificate(api_app, busy, renewing_request_id=None)

    await set_certificate(api_app, expired, status="expired")
    problem(await _renew(admin, e, expired), 422, "certificate_id")

    problem(await _renew(admin, e, str(uuid4())), 404, "certificate_id")
    other = await create_application(admin)
    outsider = await member(admin, client_for, other["slug"], "operator")
    problem(await _renew(outsider, e, busy), 404, "app")
    auditor = await member(admin, client_for, e.app, "auditor")
    problem(await _renew(auditor, e, busy), 403)
    problem(await _renew(admin, e, busy, key="sideways"), 422, "key")

    # None of this left a request behind.
    async with api_app.state.certforge.sessions() as session:
        renewals = await session.exec(
            select(CertificateRequest).where(
                col(CertificateRequest.renewal_of_id).in_(
                    [UUID(revoked), UUID(busy), UUID(expired)]
                )
            )
        )
        assert list(renewals) == []

    # An operator may renew.
    operator = await member(admin, client_for, e.app, "operator")
    await _renewed(operator, e, busy)


async def test_renewal_under_a_tightened_policy_is_capped_not_refused(
    admin: httpx.AsyncClient,
) -> None:
    """The policy is re-checked at renewal: a smaller maximum validity shortens the successor
    (and `renew_before_days` shrinks to fit it); a SAN the policy no longer allows is refused
    at once (422), before any request is queued."""
    e = await enroll(admin, defaults={"ttl": "10d"})
    first = await issue(admin, e, **_fields(), ttl="30d")
    cid = first["certificate"]["id"]
    ok(await admin.patch(f"{e.certificates}/{cid}", json={"renew_before_days": 25}))
    ok(await admin.patch(f"{API}/policies/{e.policy['id']}", json={"max_validity": "20d"}))

    renewed = await _renewed(admin, e, cid)
    cert = check_issued(renewed["certificate"], e)
    assert _validity(cert) == timedelta(days=20)
    details = await _details(admin, e, renewed["certificate"]["id"])
    assert details["renew_before_days"] == 19, details

    ok(
        await admin.patch(
            f"{API}/policies/{e.policy['id']}",
            json={
                "subject": {"common_name": {"allowed": ["*.example.org"]}},
                "sans": {"dns": {"allowed": ["*.example.org"]}},
            },
        )
    )
    problem(await _renew(admin, e, renewed["certificate"]["id"]), 422)


async def test_renewal_is_shortened_to_the_ca_expiry(admin: httpx.AsyncClient) -> None:
    """A successor never outlives its CA: the original length would end after the CA does,
    so it ends with the CA, and `renew_before_days` shrinks to fit the shorter life."""
    e = await enroll(admin, issuing_validity="10d", defaults={"ttl": "1d"})
    ca_end = e.issuing["not_after"]
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    first = await issue(admin, e, **_fields(), not_before=start.isoformat(), not_after=ca_end)
    old_cert = _cert(first["certificate"]["certificate"])
    assert old_cert.not_valid_after_utc == _cert(e.issuing["certificate"]).not_valid_after_utc

    renewed = await _renewed(admin, e, first["certificate"]["id"])
    cert = check_issued(renewed["certificate"], e)
    assert cert.not_valid_after_utc == old_cert.not_valid_after_utc, "ends with the CA"
    assert _validity(cert) < _validity(old_cert)
    details = await _details(admin, e, renewed["certificate"]["id"])
    fitted = _validity(cert) // timedelta(days=1) - 1  # 8 or 9: the CA's life is 10 days
    assert details["renew_before_days"] == fitted < 10, details


async def test_revoked_certificate_with_a_queued_renewal_is_not_renewed(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    """Revoked while its renewal waits in the queue: the issuer refuses the renewal, releases
    the claim and neither retries nor announces a renewal failure."""
    e = await enroll(admin)
    first = await issue(admin, e, **_fields(), ttl="30d")
    cid = UUID(first["certificate"]["id"])
    context = api_app.state.certforge
    request = CertificateRequest(
        application_id=UUID(e.app_id),
        profile_id=UUID(e.profile_id),
        method="managed",
        kind="renew",
        status="pending",
        params={"method": "managed", "key": "new"},
        renewal_of_id=cid,
    )
    async with context.sessions() as session:
        session.add(request)
        await session.commit()
    await set_certificate(api_app, cid, renewing_request_id=request.id)  # the renewer's claim

    r = await admin.post(f"{e.certificates}/{cid}/revoke", json={"reason": "keyCompromise"})
    assert r.status_code == 200, r.text
    command = RenewCertificate(request_id=request.id, certificate_id=cid, application_id=e.app_id)
    async with context.sessions() as session:
        enqueue(session, context.subjects.cmd_renew, CloudEvent.wrap(command, source="/tests"))
        await session.commit()
    context.relay.wake()

    done = await poll_until_done(admin, f"{e.requests}/{request.id}")
    assert done["status"] == "failed", done
    assert "revoked" in done["error"], done
    row = await certificate_row(api_app, cid)
    assert row.status == "revoked"
    assert row.renewed_by_id is None
    assert row.renewing_request_id is None
    assert row.renewal_attempts == 0
    assert row.renewal_error is None
    assert await _events(api_app, e.app, "request.failed") != []
    assert await _events(api_app, e.app, "certificate.renewal_failed") == []
    assert await _events(api_app, e.app, "certificate.renewed") == []


async def test_disabled_ca_stops_renewals_but_still_publishes_revocations(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any
) -> None:
    e = await enroll(admin)
    due = (await issue(admin, e, **_fields("due.example.com")))["certificate"]
    bad = (await issue(admin, e, **_fields("bad.example.com")))["certificate"]
    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/disable"))

    problem(await _renew(admin, e, due["id"]), 422, "certificate_id", detail_contains="disabled")
    await set_certificate(api_app, due["id"], renew_at=datetime.now(UTC) - timedelta(minutes=1))
    context = api_app.state.certforge
    scanner = RenewalScanner(context.sessions, context.subjects, ScanSettings(), context.relay.wake)
    await scanner.claim_due(datetime.now(UTC))
    assert (await certificate_row(api_app, due["id"])).renewing_request_id is None

    r = await admin.post(f"{e.certificates}/{bad['id']}/revoke", json={"reason": "keyCompromise"})
    assert r.status_code == 200, r.text
    crl = await crl_listing(anonymous, e.issuing["id"], [bad["serial_number"]])
    assert crl.get_revoked_certificate_by_serial_number(int(due["serial_number"], 16)) is None


async def test_failed_auto_renewal_is_recorded_and_backs_off(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    """The issuer refuses a claimed renewal (the policy changed since): the certificate keeps
    its status, records the error and the attempt, is due again only after a growing backoff,
    and `certificate.renewal_failed` is announced; a scan right after claims nothing."""
    e = await enroll(admin)
    first = await issue(admin, e, **_fields(), ttl="30d")
    cid = first["certificate"]["id"]
    ok(
        await admin.patch(
            f"{API}/policies/{e.policy['id']}",
            json={
                "subject": {"common_name": {"allowed": ["*.example.org"]}},
                "sans": {"dns": {"allowed": ["*.example.org"]}},
            },
        )
    )
    context = api_app.state.certforge
    scanner = RenewalScanner(context.sessions, context.subjects, ScanSettings(), context.relay.wake)

    async def failed(attempts: int) -> Any:
        row = await certificate_row(api_app, cid)
        return row if row.renewal_attempts == attempts and row.renewing_request_id is None else None

    for attempt, backoff in ((1, timedelta(minutes=1)), (2, timedelta(minutes=2))):
        await set_certificate(api_app, cid, renew_at=datetime.now(UTC) - timedelta(seconds=1))
        assert await scanner.claim_due(datetime.now(UTC)) >= 1
        before = datetime.now(UTC)
        row = await eventually(lambda a=attempt: failed(a), what=f"failed attempt {attempt}")
        assert row.status == "active"
        assert row.renewed_by_id is None
        assert row.renewal_error, row.renewal_error
        assert "example.org" in row.renewal_error, row.renewal_error
        # the step, spread by jitter over its upper half (tests/unit pins the exact values)
        slack = timedelta(seconds=5)
        assert before + backoff / 2 - slack <= row.renew_at <= datetime.now(UTC) + backoff + slack
        # Not hot: the next scans leave it alone until the backoff has passed.
        await scanner.claim_due(datetime.now(UTC))
        assert (await certificate_row(api_app, cid)).renewing_request_id is None

    async with context.sessions() as session:
        requests = list(
            await session.exec(
                select(CertificateRequest).where(CertificateRequest.renewal_of_id == UUID(cid))
            )
        )
    assert [r.status for r in requests] == ["failed", "failed"], requests
    assert all(r.kind == "renew" and r.error for r in requests)

    events = await eventually(
        lambda: _events(api_app, e.app, "certificate.renewal_failed"),
        what="certificate.renewal_failed",
    )
    assert [ev["data"]["attempts"] for ev in events] == [1, 2], events
    assert {ev["data"]["certificate_id"] for ev in events} == {cid}
    assert {ev["data"]["request_id"] for ev in events} == {str(r.id) for r in requests}
    assert await _events(api_app, e.app, "certificate.renewed") == []
    await set_certificate(api_app, cid, auto_renew=False)


# --- settings ----------------------------------------------------------------------------------


async def test_patch_renewal_settings(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    e = await enroll(admin)
    first = await issue(admin, e, **_fields(), ttl="30d", metadata={"team": "a", "tier": "1"})
    cid = first["certificate"]["id"]
    url = f"{e.certificates}/{cid}"
    before = await certificate_row(api_app, cid)
    assert before.renew_before_days == 10
    assert before.renew_at == before.not_after - timedelta(days=10)

    problem(await admin.patch(url, json={"renew_before_days": 0}), 422, "renew_before_days")
    problem(await admin.patch(url, json={"renew_before_days": 30}), 422, "renew_before_days")
    problem(await admin.patch(url, json={"renew_before_days": 400}), 422, "renew_before_days")
    problem(await admin.patch(url, json={"metadata": {"bad key!": "x"}}), 422)
    problem(await admin.patch(url, json={"renew_at": "2030-01-01T00:00:00Z"}), 422)
    auditor = await member(admin, client_for, e.app, "auditor")
    problem(await auditor.patch(url, json={"auto_renew": False}), 403)
    other = await create_application(admin)
    problem(
        await admin.patch(f"{API}/applications/{other['slug']}/certificates/{cid}", json={}),
        404,
        "certificate_id",
    )
    assert (await certificate_row(api_app, cid)).renew_at == before.renew_at

    body = ok(await admin.patch(url, json={"renew_before_days": 29}))
    assert body["renew_before_days"] == 29
    row = await certificate_row(api_app, cid)
    # at most a third of the validity before expiry: never due in the first two thirds
    assert row.renew_at == row.not_after - timedelta(days=10)
    body = ok(await admin.patch(url, json={"renew_before_days": 5, "metadata": {"team": "b"}}))
    assert body["renew_before_days"] == 5, body
    assert body["metadata"] == {"team": "b"}, body
    row = await certificate_row(api_app, cid)
    assert row.renew_at == row.not_after - timedelta(days=5)
    assert body["auto_renew"] is True
    assert ok(await admin.patch(url, json={"metadata": {}}))["metadata"] == {}

    # auto_renew off: a due certificate is left alone by the renewer.
    assert ok(await admin.patch(url, json={"auto_renew": False}))["auto_renew"] is False
    await set_certificate(api_app, cid, renew_at=datetime.now(UTC) - timedelta(minutes=1))
    context = api_app.state.certforge
    scanner = RenewalScanner(context.sessions, context.subjects, ScanSettings(), context.relay.wake)
    await scanner.claim_due(datetime.now(UTC))
    assert (await certificate_row(api_app, cid)).renewing_request_id is None

    # The successor inherits the settings as they are now.
    ok(await admin.patch(url, json={"metadata": {"team": "c"}}))
    renewed = await _renewed(admin, e, cid)
    new = await _details(admin, e, renewed["certificate"]["id"])
    assert new["auto_renew"] is False, new
    assert new["renew_before_days"] == 5, new
    assert new["metadata"] == {"team": "c"}

    # A CSR certificate is renewed by its client, never automatically.
    csr = _csr(generate_private_key(KeyAlgorithm.EC_P256))
    by_csr = (await issue(admin, e, method="csr", csr=csr))["certificate"]["id"]
    csr_url = f"{e.certificates}/{by_csr}"
    problem(await admin.patch(csr_url, json={"auto_renew": True}), 422, "auto_renew")
    assert ok(await admin.patch(csr_url, json={"renew_before_days": 3}))["renew_before_days"] == 3
