"""Builders and judges shared by the issuance integration tests (`test_issuance_*.py`).

`enroll` builds what a request needs (root → issuing CA, policy, profile, application with API
enrollment on); `check_issued` judges an issued certificate with the outside tools (`openssl
verify`, pkilint) and with the RFC 5280 properties issue 3 asks for, and returns it parsed.
Names carry a random suffix: the integration tests of a session share one database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlalchemy import func
from sqlmodel import col, select

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_identity,
    create_intermediate,
    create_policy,
    create_profile,
    create_root,
    ok,
    put_member,
    uid,
)
from certforge.api.domain.requests import body_fingerprint
from certforge.api.schemas.certificates import CertificateRequestCreate
from certforge.common.contracts.commands import IssueCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.db.tables import AuditEvent, Certificate, CertificateRequest
from certforge.common.outbox import enqueue
from pki_tools import openssl_verify, pkilint_errors

WAIT = {"Prefer": "wait=10"}


@dataclass(frozen=True)
class Enrollment:
    """One application with one profile, API enrollment on, under root → issuing CA."""

    app: str
    app_id: str
    profile: str
    profile_id: str
    root: dict[str, Any]
    issuing: dict[str, Any]
    policy: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> str:
        return f"{API}/applications/{self.app}/certificate-requests"

    @property
    def certificates(self) -> str:
        return f"{API}/applications/{self.app}/certificates"

    def body(self, **fields: Any) -> dict[str, Any]:
        """A request body for this enrollment's profile."""
        return {"profile": self.profile, **fields}


async def enroll(
    admin: httpx.AsyncClient,
    *,
    ca_key: str = "EC_P256",
    root_key: str | None = None,
    issuing_validity: str = "5y",
    policy: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Enrollment:
    """Root and issuing CA keyed `ca_key` (root: `root_key` if given), the admin_kit example
    policy and profile with `policy` / `defaults` / `extensions` overrides, an application with
    API enrollment."""
    root = await create_root(admin, key_algorithm=root_key or ca_key)
    issuing = await create_intermediate(
        admin, root["id"], key_algorithm=ca_key, validity=issuing_validity
    )
    pol = await create_policy(admin, **(policy or {}))
    profile_defaults = {
        "ttl": "30d",
        "key_algorithm": "EC_P256",
        "key_usages": ["digital_signature"],
        "extended_key_usages": ["server_auth"],
        **(defaults or {}),
    }
    more = {"extensions": extensions} if extensions is not None else {}
    profile = await create_profile(
        admin, issuing["id"], pol["id"], defaults=profile_defaults, **more
    )
    return await enroll_new_application(admin, root, issuing, pol, profile, profile_defaults)


async def enroll_new_application(
    admin: httpx.AsyncClient,
    root: dict[str, Any],
    issuing: dict[str, Any],
    policy: dict[str, Any],
    profile: dict[str, Any],
    defaults: dict[str, Any] | None = None,
) -> Enrollment:
    """A new application with `profile` attached and API enrollment on (one call)."""
    app = await create_application(admin)
    ok(
        await admin.put(
            f"{API}/applications/{app['slug']}/profiles/{profile['slug']}",
            json={"api": {"enabled": True, "auto_renew": True, "renew_before_days": 10}},
        ),
        201,
    )
    return Enrollment(
        app=app["slug"],
        app_id=app["id"],
        profile=profile["slug"],
        profile_id=profile["id"],
        root=root,
        issuing=issuing,
        policy=policy,
        defaults=defaults or {},
    )


async def member(
    admin: httpx.AsyncClient, client_for: ClientFor, app: str, role: str
) -> httpx.AsyncClient:
    """A client authenticated as a fresh identity holding `role` in `app`."""
    identity = await create_identity(admin)
    await put_member(admin, app, identity["id"], role)
    return client_for(identity["token"])


async def issue(client: httpx.AsyncClient, enrollment: Enrollment, **fields: Any) -> dict[str, Any]:
    """POST with `Prefer: wait=10`; assert 201 and return the request with its certificate."""
    r = await client.post(enrollment.requests, headers=WAIT, json=enrollment.body(**fields))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "issued", body
    assert body["certificate"] is not None, body
    return body


async def poll_until_done(
    client: httpx.AsyncClient, url: str, seconds: float = 15.0
) -> dict[str, Any]:
    """GET `url` until the request is no longer pending."""
    deadline = time.monotonic() + seconds
    while True:
        body: dict[str, Any] = ok(await client.get(url))
        if body["status"] != "pending":
            return body
        assert time.monotonic() < deadline, f"still pending after {seconds}s: {body}"
        await asyncio.sleep(0.05)


def pem_blocks(text: str) -> list[str]:
    """The PEM blocks of `text`, each with its trailing newline."""
    marker = "-----END CERTIFICATE-----"
    return [part.strip() + "\n" + marker + "\n" for part in text.split(marker) if part.strip()]


def spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_issued(issued: dict[str, Any], enrollment: Enrollment) -> x509.Certificate:
    """Judge an issued certificate (the `certificate` object of a request) and return it parsed.

    Outside judges first: `openssl verify -x509_strict` up to the root with the response's chain
    as the untrusted intermediates, and pkilint's RFC 5280 validators. Then what issue 3 lists:
    chain order, serial, basic constraints, critical key usage, SKI/AKI, CRL DP and AIA URLs.
    """
    leaf_pem, chain_pem = issued["certificate"], issued["chain"]
    chain = pem_blocks(chain_pem)
    assert chain[0].strip() == enrollment.issuing["certificate"].strip(), "issuing CA first"
    assert chain[-1].strip() == enrollment.root["certificate"].strip(), "root last"
    openssl_verify(enrollment.root["certificate"], chain, leaf_pem)
    assert pkilint_errors(leaf_pem) == "", pkilint_errors(leaf_pem)

    cert = x509.load_pem_x509_certificate(leaf_pem.encode())
    issuing = x509.load_pem_x509_certificate(enrollment.issuing["certificate"].encode())
    assert cert.version is x509.Version.v3
    assert cert.serial_number > 0
    assert cert.serial_number.bit_length() >= 64
    assert format(cert.serial_number, "x") == issued["serial_number"].lower()
    assert cert.issuer == issuing.subject
    assert cert.not_valid_before_utc.isoformat() == _utc(issued["not_before"])
    assert cert.not_valid_after_utc.isoformat() == _utc(issued["not_after"])

    extensions = cert.extensions
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca is False
    key_usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical, "key usage must be critical"
    assert not key_usage.value.key_cert_sign
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuing_ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuing_ski.digest
    ca_id = enrollment.issuing["id"]
    crl = extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_urls = [n.value for point in crl for n in point.full_name or []]
    assert len(crl_urls) == 1, crl_urls
    assert crl_urls[0].startswith("http"), crl_urls
    assert ca_id in crl_urls[0], crl_urls
    aia = extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    methods = {d.access_method: d.access_location.value for d in aia}
    assert ca_id in methods[AuthorityInformationAccessOID.OCSP]
    assert ca_id in methods[AuthorityInformationAccessOID.CA_ISSUERS]
    san = _san_extension(cert)
    if len(cert.subject) == 0:
        assert san is not None, "an empty subject needs a SAN"
        assert san.critical, "SAN must be critical with an empty subject"
    elif san is not None:
        assert not san.critical
    return cert


def _san_extension(cert: x509.Certificate) -> x509.Extension[x509.SubjectAlternativeName] | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None


def _utc(text: str) -> str:
    """An API timestamp in `datetime.isoformat()` form, for comparing with the certificate's."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()


def sans_of(cert: x509.Certificate) -> list[tuple[str, str]]:
    """The certificate's SANs as `(type, value)` in the API's vocabulary, in order."""
    extension = _san_extension(cert)
    if extension is None:
        return []
    kinds = {
        x509.DNSName: "dns",
        x509.IPAddress: "ip",
        x509.RFC822Name: "email",
        x509.UniformResourceIdentifier: "uri",
    }
    return [(kinds[type(n)], str(n.value)) for n in extension.value]


def eku_names(cert: x509.Certificate) -> set[str]:
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    return {oid._name for oid in eku}


# --- the database, read directly: what was stored -----------------------------------------------


async def request_count(api_app: Any, app_id: str) -> int:
    async with api_app.state.certforge.sessions() as session:
        count: int = (
            await session.exec(
                select(func.count())
                .select_from(CertificateRequest)
                .where(CertificateRequest.application_id == UUID(app_id))
            )
        ).one()
        return count


async def certificate_count(api_app: Any, request_id: str) -> int:
    async with api_app.state.certforge.sessions() as session:
        count: int = (
            await session.exec(
                select(func.count())
                .select_from(Certificate)
                .where(Certificate.request_id == UUID(request_id))
            )
        ).one()
        return count


async def audit_events(api_app: Any, **where: Any) -> list[AuditEvent]:
    """Audit entries matching every `column=value` of `where`, oldest first."""
    async with api_app.state.certforge.sessions() as session:
        query = select(AuditEvent)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return list(await session.exec(query.order_by(col(AuditEvent.id))))


def new_request_id() -> str:
    """A unique `X-Request-Id`, to find the audit entry of one HTTP request."""
    return uid("rq") + uuid.uuid4().hex[:8]


async def inject_request(
    api_app: Any,
    enrollment: Enrollment,
    params: dict[str, Any],
    *,
    request_id: UUID | None = None,
    command: bool = True,
    idempotency_body: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> UUID:
    """Store a pending request and (with `command`) its issue command, as `submit` does, but
    without the api's checks: a request accepted earlier, before the policy or the CA changed.

    With `request_id` of an existing request, only the command is sent again (a redelivery).
    With `idempotency_key`, the row is what a POST of `idempotency_body` with that key stored.
    The api's relay publishes the command; the session's issuer consumes it.
    """
    context = api_app.state.certforge
    fingerprint = None
    if idempotency_body is not None:
        fingerprint = body_fingerprint(CertificateRequestCreate.model_validate(idempotency_body))
    async with context.sessions() as session:
        if request_id is None:
            request = CertificateRequest(
                application_id=UUID(enrollment.app_id),
                profile_id=UUID(enrollment.profile_id),
                method=params.get("method", "managed"),
                status="pending",
                params=params,
                idempotency_key=idempotency_key,
                body_fingerprint=fingerprint,
            )
            session.add(request)
            request_id = request.id
        if command:
            message = IssueCertificate(request_id=request_id, application_id=enrollment.app_id)
            enqueue(session, context.subjects.cmd_issue, CloudEvent.wrap(message, source="/tests"))
        await session.commit()
    context.relay.wake()
    return request_id
