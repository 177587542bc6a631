"""What happens to certificates ACME issued: revokeCert by the account key and by the
certificate's own key (through the REST API's revocation path, so the CRL lists them), and
ARI's renewal information with `replaces`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey

from acme_kit import (
    acme_client,
    acme_problem,
    enable_acme,
    issued,
    public_jwk,
    ready_order,
    registered,
)
from admin_kit import API, ClientFor
from certforge.common.acme import AriCertId, b64url
from issuance_kit import Enrollment, enroll, pem_blocks
from lifecycle_kit import crl_listing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def enrollment(admin: httpx.AsyncClient, api_app: Any) -> Enrollment:
    e = await enroll(admin)
    await enable_acme(api_app, e, renew_before_days=10)
    return e


async def leaf_of(client: Any, order: dict[str, Any]) -> x509.Certificate:
    pem = (await client.get(order["certificate"])).text
    return x509.load_pem_x509_certificate(pem_blocks(pem)[0].encode())


def der_b64(cert: x509.Certificate) -> str:
    return b64url(cert.public_bytes(serialization.Encoding.DER))


async def rest_view(admin: httpx.AsyncClient, e: Enrollment, order: dict[str, Any]) -> Any:
    certificate_id = order["certificate"].rsplit("/", 1)[1]
    r = await admin.get(f"{API}/applications/{e.app}/certificates/{certificate_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def test_revoke_by_account_key(
    client_for: ClientFor,
    enrollment: Enrollment,
    api_app: Any,
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
) -> None:
    client = await registered(client_for, enrollment)
    order, _ = await issued(client, api_app, "revoke.example.com")
    cert = await leaf_of(client, order)
    url = client.directory["revokeCert"]

    acme_problem(
        await client.post(url, {"certificate": der_b64(cert), "reason": 7}),
        400,
        "badRevocationReason",
    )
    acme_problem(
        await client.post(url, {"certificate": der_b64(cert), "reason": "1"}),
        400,
        "badRevocationReason",
    )
    acme_problem(await client.post(url, {"certificate": "AAAA"}), 400, "malformed")
    stranger = await registered(client_for, enrollment)
    acme_problem(await stranger.post(url, {"certificate": der_b64(cert)}), 403, "unauthorized")

    r = await client.post(url, {"certificate": der_b64(cert), "reason": 4})
    assert r.status_code == 200, r.text
    assert r.content == b""
    view = await rest_view(admin, enrollment, order)
    assert view["status"] == "revoked"
    assert view["revocation_reason"] == "superseded"
    again = await client.post(url, {"certificate": der_b64(cert), "reason": 4})
    acme_problem(again, 400, "alreadyRevoked")
    crl = await crl_listing(anonymous, enrollment.issuing["id"], [format(cert.serial_number, "x")])
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None

    audit = await api_app.state.certforge.db.fetchrow(
        "SELECT * FROM audit_events WHERE action = 'acme.certificate.revoke' AND resource_id = $1",
        view["id"],
    )
    assert audit is not None
    assert audit["actor_name"] == f"acme-account:{client.kid.rsplit('/', 1)[1]}"  # type: ignore[union-attr]


async def test_revoke_by_certificate_key(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any, admin: httpx.AsyncClient
) -> None:
    client = await registered(client_for, enrollment)
    order, key = await issued(client, api_app, "keyholder.example.com")
    cert = await leaf_of(client, order)
    url = client.directory["revokeCert"]

    holder = await acme_client(client_for, enrollment)
    holder.key = ECKey.import_key(key)
    wrong = await acme_client(client_for, enrollment)
    r = await wrong.post(url, {"certificate": der_b64(cert)}, use_jwk=True)
    acme_problem(r, 403, "unauthorized")

    r = await holder.post(url, {"certificate": der_b64(cert), "reason": 1}, use_jwk=True)
    assert r.status_code == 200, r.text
    view = await rest_view(admin, enrollment, order)
    assert view["status"] == "revoked"
    assert view["revocation_reason"] == "keyCompromise"
    assert public_jwk(holder.key)["kty"] == "EC"


async def test_revoke_a_certificate_of_another_application(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any, admin: httpx.AsyncClient
) -> None:
    other = await enroll(admin)
    await enable_acme(api_app, other)
    elsewhere = await registered(client_for, other)
    order, key = await issued(elsewhere, api_app, "other.example.com")
    cert = await leaf_of(elsewhere, order)
    here = await acme_client(client_for, enrollment)
    here.key = ECKey.import_key(key)
    r = await here.post(here.directory["revokeCert"], {"certificate": der_b64(cert)}, use_jwk=True)
    acme_problem(r, 404, "malformed")


async def test_renewal_info_and_replaces(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any
) -> None:
    client = await registered(client_for, enrollment)
    order, _ = await issued(client, api_app, "ari.example.com")
    cert = await leaf_of(client, order)
    cert_id = str(AriCertId.of(cert))
    base = client.directory["renewalInfo"]

    r = await client.http.get(f"{base}/{cert_id}")
    assert r.status_code == 200, r.text
    assert r.headers["retry-after"] == str(6 * 3600)
    window = r.json()["suggestedWindow"]
    start = datetime.fromisoformat(window["start"])
    end = datetime.fromisoformat(window["end"])
    assert start == cert.not_valid_after_utc - timedelta(days=10)
    assert end == start + timedelta(days=5)

    # an admin asks for early renewal of everything the CA issued until now
    now = datetime.now(UTC)
    await api_app.state.certforge.db.execute(
        "UPDATE certificate_authorities SET early_renewal_requested_at = $2 WHERE id = $1::uuid",
        enrollment.issuing["id"],
        now,
    )
    try:
        window = (await client.http.get(f"{base}/{cert_id}")).json()["suggestedWindow"]
        assert datetime.fromisoformat(window["start"]) <= now + timedelta(seconds=1)
    finally:
        await api_app.state.certforge.db.execute(
            "UPDATE certificate_authorities SET early_renewal_requested_at = NULL "
            "WHERE id = $1::uuid",
            enrollment.issuing["id"],
        )

    acme_problem(await client.http.get(f"{base}/not-an-id"), 400, "malformed")
    unknown = str(AriCertId(b"\x01" * 20, 12345))
    acme_problem(await client.http.get(f"{base}/{unknown}"), 404, "malformed")

    r = await client.new_order("ari.example.com", replaces=cert_id)
    assert r.status_code == 201, r.text
    assert r.json()["replaces"] == cert_id
    acme_problem(
        await client.new_order("ari.example.com", replaces=cert_id), 409, "alreadyReplaced"
    )
    acme_problem(await client.new_order("ari.example.com", replaces=unknown), 404, "malformed")
    acme_problem(await client.new_order("ari.example.com", replaces="x.y"), 400, "malformed")


async def test_revoke_by_an_account_authorized_for_every_name(
    client_for: ClientFor, enrollment: Enrollment, api_app: Any, admin: httpx.AsyncClient
) -> None:
    owner = await registered(client_for, enrollment)
    order, _ = await issued(owner, api_app, "shared.example.com", "10.9.8.7")
    cert = await leaf_of(owner, order)
    other = await registered(client_for, enrollment)
    partly = await ready_order(other, api_app, "shared.example.com")
    assert partly["status"] == "ready"
    url = other.directory["revokeCert"]
    acme_problem(await other.post(url, {"certificate": der_b64(cert)}), 403, "unauthorized")
    await ready_order(other, api_app, "10.9.8.7")
    r = await other.post(url, {"certificate": der_b64(cert)})
    assert r.status_code == 200, r.text
    assert (await rest_view(admin, enrollment, order))["status"] == "revoked"
