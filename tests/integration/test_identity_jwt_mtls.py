"""Client certificates behind a TLS-terminating proxy: an identity bound to certificates
Certforge issued authenticates with its current certificate and renews it, like `step ca renew`.

A second api instance (same database and NATS) trusts 10.0.0.0/8 as its proxies; the ASGI
transport's client address plays the proxy's address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from admin_kit import API, create_identity, every, ok, put_member, uid
from harness import Backends
from issuance_kit import WAIT, Enrollment, enroll, issue

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

HEADER = "x-forwarded-client-cert"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def proxied_app(backends: Backends, env_for: None, api_app: object) -> AsyncIterator[Any]:
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    app = create_app(ApiSettings.load(trusted_proxies="10.0.0.0/8, 192.168.7.7"))
    async with app.router.lifespan_context(app):
        yield app


def _via(app: Any, source: str, headers: dict[str, str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(source, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://certforge.test", headers=headers)


def _xfcc(pem: str) -> str:
    return f'By=spiffe://cluster/ns/certforge/sa/api;Hash=abc;Cert="{quote(pem)}";Subject="CN=x"'


async def _bound_workload(
    admin: httpx.AsyncClient, enrollment: Enrollment, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An operator identity bound to `worker-*.example.com` certificates of the profile, and one
    such certificate (issued by the bootstrap admin)."""
    identity = await create_identity(admin, name=uid("mtls"))
    await put_member(admin, enrollment.app, identity["id"], "operator")
    ok(
        await admin.post(
            f"{API}/identities/{identity['id']}/certificate-bindings",
            json={
                "name": "workers",
                "profile": enrollment.profile,
                "common_name": "worker-*.example.com",
            },
        ),
        201,
    )
    issued = await issue(admin, enrollment, common_name=name)
    return identity, issued["certificate"]


async def test_a_bound_certificate_authenticates_and_renews_itself(
    admin: httpx.AsyncClient, proxied_app: Any
) -> None:
    enrollment = await enroll(admin)
    identity, cert = await _bound_workload(admin, enrollment, "worker-1.example.com")

    for header in (_xfcc(cert["certificate"]), quote(cert["certificate"])):
        async with _via(proxied_app, "10.3.4.5", {HEADER: header}) as workload:
            assert ok(await workload.get(f"{API}/me"))["name"] == identity["name"]

    async with _via(proxied_app, "10.3.4.5", {HEADER: _xfcc(cert["certificate"])}) as workload:
        r = await workload.post(
            f"{enrollment.certificates}/{cert['id']}/renew", headers=WAIT, json={"key": "new"}
        )
        assert r.status_code in (201, 202), r.text
        # the renewed certificate no longer authenticates; … and tokens were never involved
        await _wait_until_refused(workload)
    tokens = await every(admin, f"{API}/identities/{identity['id']}/tokens")
    assert len(tokens) == 1  # only the static token made with the identity


async def _wait_until_refused(client: httpx.AsyncClient) -> None:
    import asyncio

    for _ in range(100):
        if (await client.get(f"{API}/me")).status_code == 401:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the renewed certificate still authenticates")


def _look_alike(cert_pem: str) -> str:
    """Same subject and serial as a certificate Certforge issued, signed by someone else."""
    real = x509.load_pem_x509_certificate(cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    fake = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .public_key(key.public_key())
        .serial_number(real.serial_number)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return fake.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


async def test_refused_client_certificates(
    admin: httpx.AsyncClient, client_for: Any, api_app: Any, proxied_app: Any
) -> None:
    enrollment = await enroll(admin)
    identity, cert = await _bound_workload(admin, enrollment, "worker-2.example.com")
    pem = cert["certificate"]

    # from an address that is not a trusted proxy, or on the api that trusts none: ignored
    for app, source in ((proxied_app, "172.16.0.1"), (api_app, "10.3.4.5")):
        async with _via(app, source, {HEADER: _xfcc(pem)}) as untrusted:
            assert (await untrusted.get(f"{API}/me")).status_code == 401

    # a certificate Certforge did not issue, even with the same serial and names
    async with _via(proxied_app, "10.3.4.5", {HEADER: _xfcc(_look_alike(pem))}) as forged:
        assert (await forged.get(f"{API}/me")).status_code == 401
    async with _via(proxied_app, "10.3.4.5", {HEADER: 'Hash=abc;Subject="CN=x"'}) as broken:
        assert (await broken.get(f"{API}/me")).status_code == 401

    # a certificate of the profile whose name does not match the binding
    other = (await issue(admin, enrollment, common_name="db.example.com"))["certificate"]
    async with _via(proxied_app, "192.168.7.7", {HEADER: _xfcc(other["certificate"])}) as c:
        assert (await c.get(f"{API}/me")).status_code == 401

    # a bearer token wins over the header
    someone = await create_identity(admin)
    headers = {HEADER: _xfcc(pem), "Authorization": f"Bearer {someone['token']}"}
    async with _via(proxied_app, "10.3.4.5", headers) as both:
        assert ok(await both.get(f"{API}/me"))["name"] == someone["name"]

    # revoked: refused on the next request
    ok(await admin.post(f"{enrollment.certificates}/{cert['id']}/revoke", json={}))
    async with _via(proxied_app, "10.3.4.5", {HEADER: _xfcc(pem)}) as revoked:
        await _wait_until_refused(revoked)

    # two identities bound to the same certificate: ambiguous, so nobody
    fresh = (await issue(admin, enrollment, common_name="worker-3.example.com"))["certificate"]
    twin = await create_identity(admin)
    ok(
        await admin.post(
            f"{API}/identities/{twin['id']}/certificate-bindings",
            json={"name": "all", "profile": enrollment.profile, "common_name": "worker-3.*"},
        ),
        201,
    )
    async with _via(proxied_app, "10.3.4.5", {HEADER: _xfcc(fresh["certificate"])}) as c:
        assert (await c.get(f"{API}/me")).status_code == 401
    bindings = ok(await admin.get(f"{API}/identities/{twin['id']}/certificate-bindings"))
    ok(
        await admin.delete(
            f"{API}/identities/{twin['id']}/certificate-bindings/{bindings[0]['id']}"
        ),
        204,
    )
    async with _via(proxied_app, "10.3.4.5", {HEADER: _xfcc(fresh["certificate"])}) as c:
        assert ok(await c.get(f"{API}/me"))["name"] == identity["name"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": "b", "profile": "x"}, "body", id="fail/no-pattern"),
        pytest.param({"name": "b", "profile": "", "san": "*"}, "profile", id="fail/profile"),
        pytest.param({"name": "B!", "profile": "x", "san": "*"}, "name", id="fail/name"),
        pytest.param({"name": "b", "profile": "x", "san": " "}, "san", id="fail/blank-pattern"),
    ],
)
async def test_bad_binding_is_a_precise_422(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    identity = await create_identity(admin)
    r = await admin.post(f"{API}/identities/{identity['id']}/certificate-bindings", json=body)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()


async def test_binding_to_an_unknown_profile_is_404(admin: httpx.AsyncClient) -> None:
    identity = await create_identity(admin)
    r = await admin.post(
        f"{API}/identities/{identity['id']}/certificate-bindings",
        json={"name": "b", "profile": uid("nope"), "san": "*"},
    )
    assert r.status_code == 404, r.text
