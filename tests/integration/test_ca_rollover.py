"""CA rollover through the API (issue 18): renew (same key) and rekey (new key) make a successor
CA that overlaps the old one; profiles move when the admin says (now, or at a scheduled time);
the old CA keeps answering CRLs and OCSP. Cross-signing offers a second chain, which `openssl
verify` accepts against the second root; trust bundles hold the old and the new roots.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlmodel import col, select

from admin_kit import API, ClientFor, create_root, ok, problem
from certforge.common.db.tables import CACrossCertificate, CertificateAuthority
from certforge.renewer.rollover import ScheduledTakeOvers
from issuance_kit import Enrollment, enroll, issue, member, pem_blocks
from lifecycle_kit import eventually
from pki_tools import certificate_pem, external_certificate, openssl_verify

pytestmark = pytest.mark.integration


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _spki(pem: str) -> bytes:
    return (
        _cert(pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


async def _leaf(admin: httpx.AsyncClient, e: Enrollment, host: str) -> dict[str, Any]:
    """Issue one: its `GET …/certificates/{id}` view (with `ca_id`) and its PEM (`pem`)."""
    made = await issue(admin, e, method="managed", common_name=host, key_algorithm="EC_P256")
    certificate: dict[str, Any] = ok(await admin.get(f"{e.certificates}/{made['certificate_id']}"))
    certificate["pem"] = made["certificate"]["certificate"]
    return certificate


async def _profile_ca(admin: httpx.AsyncClient, e: Enrollment) -> str:
    body = ok(await admin.get(f"{API}/profiles/{e.profile}"))
    return str(body["ca_id"])


async def _ocsp_status(
    anonymous: httpx.AsyncClient, ca: dict[str, Any], leaf_pem: str
) -> ocsp.OCSPCertStatus:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(_cert(leaf_pem), _cert(ca["certificate"]), hashes.SHA1())
        .build()
    )
    r = await anonymous.post(
        f"/ocsp/{ca['id']}",
        content=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert r.status_code == 200, r.text
    response = ocsp.load_der_ocsp_response(r.content)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return response.certificate_status


async def _crl_serials(anonymous: httpx.AsyncClient, ca_id: str) -> set[int] | None:
    r = await anonymous.get(f"{API}/cas/{ca_id}/crl")
    if r.status_code != 200:
        return None
    return {entry.serial_number for entry in x509.load_der_x509_crl(r.content)}


async def test_renew_keeps_the_key_and_the_old_ca_keeps_answering(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    old = e.issuing
    before = await _leaf(admin, e, "before.example.com")

    renewed = ok(await admin.post(f"{API}/cas/{old['id']}/renew", json={"validity": "4y"}), 201)
    assert renewed["predecessor_ca_id"] == old["id"]
    assert renewed["subject"] == old["subject"]
    assert renewed["parent_ca_id"] == old["parent_ca_id"]
    assert renewed["serial_number"] != old["serial_number"]
    assert _spki(renewed["certificate"]) == _spki(old["certificate"])
    assert renewed["took_over_at"] is None

    # Overlap: until the take-over, the profile still issues from the old CA.
    assert await _profile_ca(admin, e) == old["id"]
    assert (await _leaf(admin, e, "overlap.example.com"))["ca_id"] == old["id"]

    moved = ok(await admin.post(f"{API}/cas/{renewed['id']}/take-over", json={}))
    assert moved["took_over_at"] is not None
    assert await _profile_ca(admin, e) == renewed["id"]
    after = await _leaf(admin, e, "after.example.com")
    assert after["ca_id"] == renewed["id"]
    openssl_verify(e.root["certificate"], [renewed["certificate"]], after["pem"])
    # Same subject and key: what the old CA signed verifies under the renewed certificate too.
    openssl_verify(e.root["certificate"], [renewed["certificate"]], before["pem"])

    # The old CA keeps its CRL and OCSP for what it issued.
    ok(await admin.post(f"{e.certificates}/{before['id']}/revoke", json={"reason": "superseded"}))
    serial = int(before["serial_number"], 16)
    await eventually(
        lambda: _has(anonymous, old["id"], serial), what="the old CA's CRL lists the revocation"
    )
    status = await _ocsp_status(anonymous, old, before["pem"])
    assert status is ocsp.OCSPCertStatus.REVOKED

    problem(await admin.post(f"{API}/cas/{renewed['id']}/take-over", json={}), 409, "ca_id")


async def _has(anonymous: httpx.AsyncClient, ca_id: str, serial: int) -> bool:
    serials = await _crl_serials(anonymous, ca_id)
    return serials is not None and serial in serials


async def test_rekey_with_a_scheduled_take_over(admin: httpx.AsyncClient, api_app: Any) -> None:
    e = await enroll(admin)
    old = e.issuing
    at = datetime.now(UTC) + timedelta(hours=1)
    rekeyed = ok(
        await admin.post(
            f"{API}/cas/{old['id']}/rekey",
            json={"validity": "4y", "key_algorithm": "EC_P384", "takes_over_at": at.isoformat()},
        ),
        201,
    )
    assert _spki(rekeyed["certificate"]) != _spki(old["certificate"])
    assert rekeyed["key_algorithm"] == "EC_P384"
    assert _cert(rekeyed["certificate"]).subject == _cert(old["certificate"]).subject

    scheduler = ScheduledTakeOvers(api_app.state.certforge.sessions, timedelta(seconds=1))
    await scheduler.run_due(at - timedelta(minutes=1))
    assert await _profile_ca(admin, e) == old["id"], "moved before its time"
    assert await scheduler.run_due(at + timedelta(seconds=1)) >= 1
    assert await _profile_ca(admin, e) == rekeyed["id"]
    fresh = await _leaf(admin, e, "rekeyed.example.com")
    openssl_verify(e.root["certificate"], [rekeyed["certificate"]], fresh["pem"])
    body = ok(await admin.get(f"{API}/cas/{rekeyed['id']}"))
    assert body["took_over_at"] is not None
    events = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"action": "ca.take_over", "resource_id": rekeyed["id"]},
        )
    )["items"]
    assert [(e["actor_name"], e["details"]["scheduled"]) for e in events] == [
        ("certforge-renewer", True)
    ], "the take-over on schedule is in the audit log, done by the renewer"


async def test_root_rollover_bundles_hold_the_old_and_the_new_root(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    root = e.root
    new_root = ok(await admin.post(f"{API}/cas/{root['id']}/rekey", json={"validity": "12y"}), 201)
    assert new_root["type"] == "root"
    assert _cert(new_root["certificate"]).issuer == _cert(new_root["certificate"]).subject

    r = await anonymous.get(f"{API}/cas/{e.issuing['id']}/bundle")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-pem-file")
    assert pem_blocks(r.text) == pem_blocks(root["certificate"] + new_root["certificate"])
    # The new root's bundle holds the old one too, its own first.
    bundle = (await anonymous.get(f"{API}/cas/{new_root['id']}/bundle")).text
    assert pem_blocks(bundle) == pem_blocks(new_root["certificate"] + root["certificate"])


async def test_cross_signed_intermediate_verifies_through_both_roots(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    other_root = await create_root(admin)
    cross = ok(
        await admin.post(
            f"{API}/cas/{e.issuing['id']}/cross-sign", json={"signer_ca_id": other_root["id"]}
        ),
        201,
    )
    assert cross["ca_id"] == e.issuing["id"]
    assert cross["signer_ca_id"] == other_root["id"]
    assert _cert(cross["certificate"]).subject == _cert(e.issuing["certificate"]).subject
    assert _spki(cross["certificate"]) == _spki(e.issuing["certificate"])

    chains = ok(await anonymous.get(f"{API}/cas/{e.issuing['id']}/chains"))
    assert [c["signer_ca_id"] for c in chains] == [e.root["id"], other_root["id"]]
    via_other = await anonymous.get(f"{API}/cas/{e.issuing['id']}/chains/{other_root['id']}")
    assert via_other.status_code == 200, via_other.text
    assert via_other.text == chains[1]["certificates"]

    leaf = await _leaf(admin, e, "cross.example.com")
    first = pem_blocks(chains[0]["certificates"])
    second = pem_blocks(via_other.text)
    openssl_verify(e.root["certificate"], first[:1], leaf["pem"])
    openssl_verify(other_root["certificate"], second[:1], leaf["pem"])
    with pytest.raises(AssertionError, match="openssl verify failed"):
        openssl_verify(other_root["certificate"], first[:1], leaf["pem"])

    bundle = (await anonymous.get(f"{API}/cas/{e.issuing['id']}/bundle")).text
    assert pem_blocks(bundle) == pem_blocks(e.root["certificate"] + other_root["certificate"])


async def test_bad_rollovers_are_refused_naming_the_field(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    e = await enroll(admin)
    issuing, root = e.issuing, e.root
    problem(await admin.post(f"{API}/cas/{issuing['id']}/take-over", json={}), 422, "ca_id")
    problem(
        await admin.post(
            f"{API}/cas/{issuing['id']}/take-over", json={"at": "2027-01-01T00:00:00"}
        ),
        422,
        "at",
    )
    problem(
        await admin.post(f"{API}/cas/{issuing['id']}/renew", json={"validity": "99y"}),
        422,
        "validity",
    )
    problem(
        await admin.post(
            f"{API}/cas/{issuing['id']}/renew",
            json={"validity": "1y", "takes_over_at": "2027-01-01T00:00:00"},
        ),
        422,
        "takes_over_at",
    )
    problem(
        await admin.post(f"{API}/cas/{issuing['id']}/renew", json={"validity": "1y", "x": 1}),
        422,
        "x",
    )
    problem(
        await admin.post(
            f"{API}/cas/{issuing['id']}/renew", json={"validity": "1y", "name": root["name"]}
        ),
        409,
        "name",
    )
    problem(
        await admin.post(
            f"{API}/cas/{issuing['id']}/cross-sign", json={"signer_ca_id": root["id"]}
        ),
        422,
        "signer_ca_id",
    )
    problem(
        await admin.post(
            f"{API}/cas/{issuing['id']}/cross-sign", json={"signer_ca_id": issuing["id"]}
        ),
        422,
        "signer_ca_id",
    )
    problem(
        await admin.post(
            f"{API}/cas/{root['id']}/cross-sign", json={"signer_ca_id": issuing["id"]}
        ),
        422,
        "signer_ca_id",
    )
    unknown = "00000000-0000-4000-8000-000000000000"
    problem(
        await admin.post(f"{API}/cas/{issuing['id']}/cross-sign", json={"signer_ca_id": unknown}),
        404,
        "signer_ca_id",
    )
    problem(await admin.post(f"{API}/cas/{unknown}/renew", json={"validity": "1y"}), 404, "ca_id")
    problem(await admin.get(f"{API}/cas/{issuing['id']}/chains/{unknown}"), 404, "signer_ca_id")
    outsider = await member(admin, client_for, e.app, "operator")
    r = await outsider.post(f"{API}/cas/{issuing['id']}/renew", json={"validity": "1y"})
    assert r.status_code == 403, r.text
    # An imported CA is renewed by its own issuer.
    key = ec.generate_private_key(ec.SECP256R1())
    cert = external_certificate("Imported Root", key, None, ca=True)
    imported = ok(
        await admin.post(
            f"{API}/cas/import",
            json={
                "name": f"imported-{e.app}",
                "certificate": certificate_pem(cert),
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
            },
        ),
        201,
    )
    problem(
        await admin.post(f"{API}/cas/{imported['id']}/rekey", json={"validity": "1y"}), 422, "ca_id"
    )
    # Nothing was made by the refusals.
    async with api_app.state.certforge.sessions() as session:
        made = await session.exec(
            select(CertificateAuthority).where(
                col(CertificateAuthority.predecessor_id).in_([issuing["id"], root["id"]])
            )
        )
        assert made.all() == []
        crosses = await session.exec(
            select(CACrossCertificate).where(CACrossCertificate.ca_id == UUID(issuing["id"]))
        )
        assert crosses.all() == []
