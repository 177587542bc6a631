"""Issue 3, reads: a certificate's details and PEM downloads, the managed private key (operators
and admins only, every read audited), roles, and tenant isolation (another application's
members get 404, never the data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from admin_kit import ClientFor, ok, problem
from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.common.template import San
from issuance_kit import (
    Enrollment,
    audit_events,
    check_issued,
    enroll,
    issue,
    member,
    new_request_id,
    pem_blocks,
    spki,
)
from pki_tools import openssl_verify

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PEM = "application/x-pem-file"


@dataclass
class World:
    shop: Enrollment
    other: Enrollment
    operator: httpx.AsyncClient
    auditor: httpx.AsyncClient
    outsider: httpx.AsyncClient  # operator of `other`, nothing in `shop`
    managed: dict[str, Any]  # a request issued with a managed key, by the operator
    csr: dict[str, Any]  # a request issued from a CSR


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(admin: httpx.AsyncClient, client_for: ClientFor) -> World:
    shop = await enroll(admin)
    other = await enroll(admin)
    operator = await member(admin, client_for, shop.app, "operator")
    auditor = await member(admin, client_for, shop.app, "auditor")
    outsider = await member(admin, client_for, other.app, "operator")
    managed = await issue(
        operator,
        shop,
        common_name="api.example.com",
        sans=[{"type": "dns", "value": "api.example.com"}, {"type": "ip", "value": "10.1.2.3"}],
        key_algorithm="EC_P256",
        ttl="30d",
        metadata={"team": "payments", "env": "prod"},
    )
    csr = build_csr(
        generate_private_key(KeyAlgorithm.EC_P256),
        SubjectFields(common_name="csr.example.com"),
        [San(type="dns", value="csr.example.com")],
    )
    from_csr = await issue(operator, shop, method="csr", csr=csr_to_pem(csr), ttl="7d")
    return World(shop, other, operator, auditor, outsider, managed, from_csr)


async def test_certificate_details(world: World) -> None:
    issued = world.managed["certificate"]
    cert = check_issued(issued, world.shop)
    details = ok(await world.auditor.get(f"{world.shop.certificates}/{issued['id']}"))
    assert details["id"] == issued["id"]
    assert details["application"] == world.shop.app
    assert details["profile"] == world.shop.profile
    assert details["ca_id"] == world.shop.issuing["id"]
    assert details["request_id"] == world.managed["id"]
    assert details["method"] == "managed"
    assert details["status"] == "active"
    assert details["serial_number"] == issued["serial_number"] == format(cert.serial_number, "x")
    assert details["subject"] == "CN=api.example.com"
    assert details["common_name"] == "api.example.com"
    assert details["sans"] == [
        {"type": "dns", "value": "api.example.com"},
        {"type": "ip", "value": "10.1.2.3"},
    ]
    assert details["key_algorithm"] == "EC_P256"
    assert details["signature_algorithm"] == "SHA256"
    assert details["not_before"] == issued["not_before"]
    assert details["not_after"] == issued["not_after"]
    der = cert.public_bytes(serialization.Encoding.DER)
    assert details["fingerprint_sha256"] == hashlib.sha256(der).hexdigest()
    assert details["metadata"] == {"team": "payments", "env": "prod"}
    assert details["has_private_key"] is True
    assert details["auto_renew"] is True
    assert details["renew_before_days"] == 10
    assert details["renewed_from_id"] is None
    assert details["revoked_at"] is None
    assert "private_key" not in details
    assert "encrypted_private_key" not in details


async def test_pem_chain_and_bundle(world: World) -> None:
    issued = world.managed["certificate"]
    base = f"{world.shop.certificates}/{issued['id']}"
    pem = await world.auditor.get(f"{base}/pem")
    assert pem.status_code == 200
    assert pem.headers["content-type"].startswith(PEM)
    assert pem.text == issued["certificate"]
    chain = await world.auditor.get(f"{base}/chain")
    assert chain.status_code == 200
    assert chain.headers["content-type"].startswith(PEM)
    assert chain.text == issued["chain"]
    blocks = pem_blocks(chain.text)
    assert [b.strip() for b in blocks] == [
        world.shop.issuing["certificate"].strip(),
        world.shop.root["certificate"].strip(),
    ]
    bundle = await world.auditor.get(f"{base}/bundle")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith(PEM)
    assert bundle.text == issued["certificate"] + issued["chain"]
    leaf, *rest = pem_blocks(bundle.text)
    openssl_verify(world.shop.root["certificate"], rest, leaf)
    assert x509.load_pem_x509_certificates(bundle.text.encode())[0].serial_number == int(
        issued["serial_number"], 16
    )


async def test_private_key_read_is_audited(api_app: Any, world: World) -> None:
    issued = world.managed["certificate"]
    url = f"{world.shop.certificates}/{issued['id']}/private-key"
    before = len(await audit_events(api_app, action="certificate.private_key"))
    request_id = new_request_id()
    r = await world.operator.get(url, headers={"X-Request-Id": request_id})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(PEM)
    assert r.headers["cache-control"] == "no-store"
    assert r.text == issued["private_key"]
    key = serialization.load_pem_private_key(r.text.encode(), password=None)
    cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert spki(key.public_key()) == spki(cert.public_key())

    entries = await audit_events(api_app, request_id=request_id)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry.action == "certificate.private_key"
    assert entry.outcome == "success"
    assert entry.resource_type == "certificate"
    assert entry.resource_id == issued["id"]
    assert str(entry.application_id) == world.shop.app_id
    assert "BEGIN" not in str(entry.details), "the key itself is never in the audit log"
    # Every read, not just the first.
    assert (await world.operator.get(url)).status_code == 200
    after = await audit_events(api_app, action="certificate.private_key")
    assert len(after) == before + 2


async def test_private_key_refusals(world: World) -> None:
    managed = f"{world.shop.certificates}/{world.managed['certificate']['id']}/private-key"
    from_csr = f"{world.shop.certificates}/{world.csr['certificate']['id']}/private-key"
    problem(await world.operator.get(from_csr), 422, "certificate_id")
    problem(await world.auditor.get(managed), 403)
    problem(await world.outsider.get(managed), 404)


async def test_request_view_by_role(api_app: Any, world: World) -> None:
    """Operators see the managed key in the request (an audited read); auditors never do."""
    url = f"{world.shop.requests}/{world.managed['id']}"
    seen = ok(await world.auditor.get(url))
    assert seen["status"] == "issued"
    assert seen["certificate"]["certificate"] == world.managed["certificate"]["certificate"]
    assert seen["certificate"]["private_key"] is None

    request_id = new_request_id()
    seen = ok(await world.operator.get(url, headers={"X-Request-Id": request_id}))
    assert seen["certificate"]["private_key"] == world.managed["certificate"]["private_key"]
    entries = await audit_events(api_app, request_id=request_id)
    assert [e.details.get("private_key") for e in entries] == ["read"], entries
    assert entries[0].resource_id == world.managed["certificate"]["id"]

    csr_view = ok(await world.operator.get(f"{world.shop.requests}/{world.csr['id']}"))
    assert csr_view["method"] == "csr"
    assert csr_view["certificate"]["private_key"] is None

    listed = ok(await world.auditor.get(world.shop.requests))
    assert {i["id"] for i in listed["items"]} >= {world.managed["id"], world.csr["id"]}


async def test_replayed_post_that_returns_the_key_is_audited(
    api_app: Any, world: World, admin: httpx.AsyncClient
) -> None:
    """A POST replayed with its Idempotency-Key hands the managed key out again: audited as a
    key read, like any other path that returns it."""
    body = world.shop.body(common_name="replay.example.com")
    headers = {"Prefer": "wait=10", "Idempotency-Key": new_request_id()}
    first = ok(await world.operator.post(world.shop.requests, headers=headers, json=body), 201)
    request_id = new_request_id()
    again = await world.operator.post(
        world.shop.requests, headers={**headers, "X-Request-Id": request_id}, json=body
    )
    assert again.status_code == 201, again.text
    assert again.json()["certificate"]["private_key"] == first["certificate"]["private_key"]
    entries = await audit_events(api_app, request_id=request_id)
    assert [e.details.get("private_key") for e in entries] == ["read"], entries


async def test_other_tenants_get_404(world: World) -> None:
    cert_id = world.managed["certificate"]["id"]
    request_id = world.managed["id"]
    own = world.shop
    foreign = world.other
    for path in (
        f"{own.certificates}/{cert_id}",
        f"{own.certificates}/{cert_id}/pem",
        f"{own.certificates}/{cert_id}/chain",
        f"{own.certificates}/{cert_id}/bundle",
        f"{own.certificates}/{cert_id}/private-key",
        f"{own.requests}/{request_id}",
        own.requests,
        # Through the outsider's own application: the ids exist, but not there.
        f"{foreign.certificates}/{cert_id}",
        f"{foreign.certificates}/{cert_id}/pem",
        f"{foreign.certificates}/{cert_id}/private-key",
        f"{foreign.requests}/{request_id}",
    ):
        r = await world.outsider.get(path)
        problem(r, 404)
        assert "BEGIN" not in r.text
        assert world.managed["certificate"]["serial_number"] not in r.text
    listed = ok(await world.outsider.get(foreign.requests))
    assert request_id not in {i["id"] for i in listed["items"]}


async def test_unknown_ids_are_404(world: World) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (
        f"{world.shop.certificates}/{missing}",
        f"{world.shop.certificates}/{missing}/pem",
        f"{world.shop.requests}/{missing}",
    ):
        problem(await world.operator.get(path), 404)
    problem(await world.operator.get(f"{world.shop.certificates}/not-a-uuid"), 422)


async def test_reads_need_a_token(anonymous: httpx.AsyncClient, world: World) -> None:
    cert_id = world.managed["certificate"]["id"]
    for path in (
        f"{world.shop.certificates}/{cert_id}",
        f"{world.shop.certificates}/{cert_id}/private-key",
        f"{world.shop.requests}/{world.managed['id']}",
        world.shop.requests,
    ):
        problem(await anonymous.get(path), 401)
