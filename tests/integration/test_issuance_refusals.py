"""Issue 3, "Bad input": each refusal is a precise problem+json naming the field at fault, never
a 500, and nothing is stored but the audit entry of the refused attempt.

Each POST carries its own `X-Request-Id`; afterwards the application has no new request row
and the audit log holds exactly one entry for that HTTP request, a `failed`/`denied` one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from admin_kit import API, ClientFor, create_profile, ok, problem
from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.common.template import San
from issuance_kit import (
    WAIT,
    Enrollment,
    audit_events,
    enroll,
    issue,
    member,
    new_request_id,
    request_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _csr(
    key: Any = None,
    common_name: str = "api.example.com",
    sans: list[San] | None = None,
) -> str:
    key = key or generate_private_key(KeyAlgorithm.EC_P256)
    return csr_to_pem(build_csr(key, SubjectFields(common_name=common_name), sans))


def _raw_csr(key: Any, name: x509.Name, sans: list[x509.GeneralName] | None = None) -> str:
    """A CSR built without our helpers, for keys and names they would refuse."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _tampered_csr() -> str:
    """A well-formed CSR whose signature no longer verifies (last signature byte flipped)."""
    pem = _csr(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    return tampered.public_bytes(serialization.Encoding.PEM).decode()


def _cn_name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


_VALID_CSR = _csr()

# (body fields, status, fields named): the profile is added; `None` fields are dropped.
Case = tuple[dict[str, Any], int, tuple[str, ...]]
CASES: dict[str, Case] = {
    # --- CSR PEM
    "fail/csr-not-pem": ({"method": "csr", "csr": "hello"}, 400, ("csr",)),
    "fail/csr-bad-base64": (
        {
            "method": "csr",
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\n!!notbase64!!\n"
            "-----END CERTIFICATE REQUEST-----\n",
        },
        400,
        ("csr",),
    ),
    "fail/csr-truncated": (
        {"method": "csr", "csr": _VALID_CSR[: len(_VALID_CSR) // 2]},
        400,
        ("csr",),
    ),
    "fail/csr-truncated-with-end": (
        {
            "method": "csr",
            "csr": _VALID_CSR.splitlines()[0]
            + "\n"
            + _VALID_CSR.splitlines()[1]
            + "\n-----END CERTIFICATE REQUEST-----\n",
        },
        400,
        ("csr",),
    ),
    "fail/csr-two-blocks": ({"method": "csr", "csr": _VALID_CSR + _csr()}, 400, ("csr",)),
    "fail/csr-bad-signature": ({"method": "csr", "csr": _tampered_csr()}, 422, ("csr",)),
    "fail/csr-rsa-1024": (
        {
            "method": "csr",
            "csr": _raw_csr(
                rsa.generate_private_key(public_exponent=65537, key_size=1024),
                _cn_name("api.example.com"),
            ),
        },
        422,
        ("csr",),
    ),
    "fail/csr-secp256k1": (
        {
            "method": "csr",
            "csr": _raw_csr(ec.generate_private_key(ec.SECP256K1()), _cn_name("api.example.com")),
        },
        422,
        ("csr",),
    ),
    "fail/csr-unsupported-subject-attribute": (
        {
            "method": "csr",
            "csr": _raw_csr(
                ec.generate_private_key(ec.SECP256R1()),
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, "api.example.com"),
                        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.com"),
                    ]
                ),
            ),
        },
        422,
        ("csr",),
    ),
    "fail/csr-san-outside-policy": (
        {
            "method": "csr",
            "csr": _csr(
                sans=[San(type="dns", value="api.example.com"), San(type="dns", value="evil.org")]
            ),
        },
        422,
        ("csr.sans.1.value",),
    ),
    "fail/csr-cn-outside-policy": (
        {"method": "csr", "csr": _csr(common_name="api.evil.org")},
        422,
        ("csr.common_name",),
    ),
    "fail/csr-too-long": (
        {"method": "csr", "csr": _VALID_CSR + "x" * 70_000},
        422,
        ("csr",),
    ),
    "fail/csr-missing": ({"method": "csr"}, 422, ("csr",)),
    "fail/csr-with-common-name": (
        {"method": "csr", "csr": _VALID_CSR, "common_name": "api.example.com"},
        422,
        ("common_name",),
    ),
    "fail/csr-with-sans": (
        {"method": "csr", "csr": _VALID_CSR, "sans": [{"type": "dns", "value": "a.example.com"}]},
        422,
        ("sans",),
    ),
    "fail/csr-with-key-algorithm": (
        {"method": "csr", "csr": _VALID_CSR, "key_algorithm": "EC_P256"},
        422,
        ("key_algorithm",),
    ),
    "fail/managed-with-csr": (
        {"method": "managed", "common_name": "api.example.com", "csr": _VALID_CSR},
        422,
        ("csr",),
    ),
    # --- validity
    "fail/ttl-over-policy-max": ({"common_name": "api.example.com", "ttl": "91d"}, 422, ("ttl",)),
    "fail/not-after-over-policy-max": (
        {
            "common_name": "api.example.com",
            "not_before": "2030-01-01T00:00:00Z",
            "not_after": "2030-06-01T00:00:00Z",
        },
        422,
        ("not_after",),
    ),
    "fail/ttl-garbage": ({"common_name": "api.example.com", "ttl": "soon"}, 422, ("ttl",)),
    "fail/ttl-zero": ({"common_name": "api.example.com", "ttl": "0d"}, 422, ("ttl",)),
    "fail/ttl-and-not-after": (
        {"common_name": "api.example.com", "ttl": "1d", "not_after": "2030-01-01T00:00:00Z"},
        422,
        ("ttl",),
    ),
    "fail/not-after-before-not-before": (
        {
            "common_name": "api.example.com",
            "not_before": "2030-01-02T00:00:00Z",
            "not_after": "2030-01-01T00:00:00Z",
        },
        422,
        ("not_after",),
    ),
    "fail/window-in-the-past": (
        {
            "common_name": "api.example.com",
            "not_before": "2020-01-01T00:00:00Z",
            "not_after": "2020-02-01T00:00:00Z",
        },
        422,
        ("not_after",),
    ),
    "fail/naive-not-after": (
        {"common_name": "api.example.com", "not_after": "2030-01-01T00:00:00"},
        422,
        ("not_after",),
    ),
    # --- names
    "fail/san-outside-policy": (
        {"sans": [{"type": "dns", "value": "api.example.com"}, {"type": "dns", "value": "x.io"}]},
        422,
        ("sans.1.value",),
    ),
    "fail/ip-outside-policy": (
        {"common_name": "api.example.com", "sans": [{"type": "ip", "value": "192.168.1.1"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/cn-outside-policy": ({"common_name": "api.evil.org"}, 422, ("common_name",)),
    "fail/invalid-ip": (
        {"common_name": "api.example.com", "sans": [{"type": "ip", "value": "10.1.2.300"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/invalid-email": (
        {"common_name": "api.example.com", "sans": [{"type": "email", "value": "no-at-sign"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/invalid-uri": (
        {"common_name": "api.example.com", "sans": [{"type": "uri", "value": "no scheme here"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/invalid-dns": (
        {"sans": [{"type": "dns", "value": "bad_label.example.com"}]},
        422,
        ("sans.0.value",),
    ),
    # IDNA 2008 refuses some code points IDNA 2003 took (symbols, joiners out of context).
    "fail/dns-idna-disallowed-code-point": (
        {"common_name": "api.example.com", "sans": [{"type": "dns", "value": "sn☃w.example.com"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/dns-idna-joiner-out-of-context": (
        {
            "common_name": "api.example.com",
            "sans": [{"type": "dns", "value": "a\u200db.example.com"}],
        },
        422,
        ("sans.0.value",),
    ),
    # Syntax the pre-issuance lint would refuse later is refused at once.
    "fail/dns-single-label": (
        {"common_name": "api.example.com", "sans": [{"type": "dns", "value": "localhost"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/dns-numeric-tld": (
        {"common_name": "api.example.com", "sans": [{"type": "dns", "value": "10.1.2.3"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/email-double-dot": (
        {"common_name": "api.example.com", "sans": [{"type": "email", "value": "a..b@x.com"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/uri-non-ascii": (
        {"common_name": "api.example.com", "sans": [{"type": "uri", "value": "https://x.com/ü"}]},
        422,
        ("sans.0.value",),
    ),
    "fail/uri-control-character": (
        {
            "common_name": "api.example.com",
            "sans": [{"type": "uri", "value": "https://x.com/\x07"}],
        },
        422,
        ("sans.0.value",),
    ),
    "fail/cn-control-character": ({"common_name": "api\x00.example.com"}, 422, ("common_name",)),
    "fail/csr-san-single-label": (
        {
            "method": "csr",
            "csr": _raw_csr(
                ec.generate_private_key(ec.SECP256R1()),
                _cn_name("api.example.com"),
                [x509.DNSName("localhost")],
            ),
        },
        422,
        ("csr.sans.0",),
    ),
    "fail/unknown-san-type": (
        {"sans": [{"type": "upn", "value": "a@example.com"}]},
        422,
        ("sans.0.type",),
    ),
    "fail/no-subject-no-sans": ({}, 422, ("subject",)),
    "fail/bad-country": ({"common_name": "api.example.com", "country": "USA"}, 422, ("country",)),
    # --- algorithms and usages
    "fail/unknown-key-algorithm": (
        {"common_name": "api.example.com", "key_algorithm": "RSA_1024"},
        422,
        ("key_algorithm",),
    ),
    "fail/key-algorithm-outside-policy": (
        {"common_name": "api.example.com", "key_algorithm": "EC_P521"},
        422,
        ("key_algorithm",),
    ),
    "fail/unknown-signature-algorithm": (
        {"common_name": "api.example.com", "signature_algorithm": "MD5"},
        422,
        ("signature_algorithm",),
    ),
    "fail/key-usage-outside-policy": (
        {"common_name": "api.example.com", "key_usages": ["content_commitment"]},
        422,
        ("key_usages",),
    ),
    "fail/key-usage-wrong-for-key": (
        {
            "common_name": "api.example.com",
            "key_algorithm": "EC_P256",
            "key_usages": ["key_encipherment"],
        },
        422,
        ("key_usages",),
    ),
    "fail/eku-outside-policy": (
        {"common_name": "api.example.com", "extended_key_usages": ["code_signing"]},
        422,
        ("extended_key_usages",),
    ),
    # --- shape
    "fail/unknown-method": ({"method": "acme", "common_name": "a.example.com"}, 422, ("method",)),
    "fail/unknown-field": ({"common_name": "api.example.com", "colour": "red"}, 422, ("colour",)),
    "fail/bad-metadata-key": (
        {"common_name": "api.example.com", "metadata": {"bad key!": "x"}},
        422,
        ("metadata.bad key!.[key]",),
    ),
    "fail/metadata-not-string": (
        {"common_name": "api.example.com", "metadata": {"n": 1}},
        422,
        ("metadata.n",),
    ),
    "fail/profile-missing": (
        {"profile": None, "common_name": "api.example.com"},
        422,
        ("profile",),
    ),
    "fail/profile-unknown": (
        {"profile": "no-such-profile", "common_name": "api.example.com"},
        422,
        ("profile",),
    ),
}


@dataclass
class Refusals:
    """Assert a POST is refused and leaves only its audit entry behind."""

    api_app: Any
    enrollment: Enrollment

    async def post(
        self,
        client: httpx.AsyncClient,
        status: int,
        *fields: str,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        audited: bool = True,
    ) -> dict[str, Any]:
        e = self.enrollment
        before = await request_count(self.api_app, e.app_id)
        request_id = new_request_id()
        sent = {**WAIT, "X-Request-Id": request_id, **(headers or {})}
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
            r = await client.post(e.requests, headers=sent, content=content)
        else:
            r = await client.post(e.requests, headers=sent, json=json)
        body = problem(r, status, *fields)
        assert "BEGIN" not in r.text, "a refusal never echoes PEM input"
        assert await request_count(self.api_app, e.app_id) == before, "nothing stored"
        entries = await audit_events(self.api_app, request_id=request_id)
        if audited:
            assert len(entries) == 1, entries
            entry = entries[0]
            assert entry.action == "certificate_request.create"
            assert entry.outcome == ("denied" if status in (401, 403) else "failed")
            assert entry.status_code == status
        return body


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin)


@pytest.fixture
def refusals(api_app: Any, shop: Enrollment) -> Refusals:
    return Refusals(api_app, shop)


@pytest.mark.parametrize(("fields", "status", "named"), list(CASES.values()), ids=list(CASES))
async def test_bad_request_body(
    admin: httpx.AsyncClient,
    refusals: Refusals,
    fields: dict[str, Any],
    status: int,
    named: tuple[str, ...],
) -> None:
    body = {"profile": refusals.enrollment.profile, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    await refusals.post(admin, status, *named, json=body)


async def test_policy_lists_every_violation(admin: httpx.AsyncClient, refusals: Refusals) -> None:
    body = refusals.enrollment.body(
        common_name="api.evil.org",
        sans=[{"type": "dns", "value": "a.evil.org"}, {"type": "ip", "value": "8.8.8.8"}],
        key_algorithm="EC_P521",
        ttl="1y",
    )
    problem_body = await refusals.post(
        admin, 422, "common_name", "sans.0.value", "sans.1.value", "key_algorithm", "ttl", json=body
    )
    assert problem_body["type"] == "urn:certforge:problem:policy-violation"
    # one per rule and value: the CN the subject rule refuses is not refused again by the DNS rule
    assert problem_body["detail"].startswith("5 violation")


async def test_certificate_pem_as_csr(admin: httpx.AsyncClient, refusals: Refusals) -> None:
    root_pem = refusals.enrollment.root["certificate"]
    await refusals.post(
        admin, 400, "csr", json=refusals.enrollment.body(method="csr", csr=root_pem)
    )


async def test_not_json(admin: httpx.AsyncClient, refusals: Refusals) -> None:
    await refusals.post(admin, 400, content=b"{not json")
    await refusals.post(admin, 422, "body", content=b"[1, 2]")


async def test_body_too_large(admin: httpx.AsyncClient, refusals: Refusals) -> None:
    """Refused before parsing (the middleware): not routed, so no audit entry either."""
    big = refusals.enrollment.body(common_name="api.example.com", metadata={"x": "y" * 200})
    big["padding"] = "z" * 300_000
    await refusals.post(admin, 413, json=big, audited=False)


async def test_ttl_beyond_the_ca(admin: httpx.AsyncClient, api_app: Any) -> None:
    e = await enroll(admin, issuing_validity="10d", defaults={"ttl": "1d"})
    body = await Refusals(api_app, e).post(
        admin, 422, "ttl", json=e.body(common_name="api.example.com", ttl="30d")
    )
    assert "after CA" in body["detail"]
    await Refusals(api_app, e).post(
        admin,
        422,
        "not_after",
        json=e.body(common_name="api.example.com", not_after="2099-01-01T00:00:00Z"),
    )
    await issue(admin, e, common_name="api.example.com", ttl="9d")


async def test_wildcard_where_not_allowed(admin: httpx.AsyncClient, api_app: Any) -> None:
    e = await enroll(
        admin,
        policy={
            "sans": {"dns": {"allowed": ["*.example.com", "example.com"], "allow_wildcard": False}}
        },
    )
    check = Refusals(api_app, e)
    body = await check.post(
        admin, 422, "sans.0.value", json=e.body(sans=[{"type": "dns", "value": "*.example.com"}])
    )
    assert "wildcard" in body["detail"]
    # Nor as the common name, where legacy clients would still honour it.
    await check.post(admin, 422, "common_name", json=e.body(common_name="*.example.com"))
    key = generate_private_key(KeyAlgorithm.EC_P256)
    csr = _csr(key, "www.example.com", [San(type="dns", value="*.example.com")])
    await check.post(admin, 422, "csr.sans.0.value", json=e.body(method="csr", csr=csr))
    await issue(admin, e, sans=[{"type": "dns", "value": "www.example.com"}])


async def test_profile_not_usable(admin: httpx.AsyncClient, api_app: Any) -> None:
    e = await enroll(admin)
    check = Refusals(api_app, e)
    unattached = await create_profile(admin, e.issuing["id"], e.policy["id"])
    body = await check.post(
        admin, 422, "profile", json={"profile": unattached["slug"], "common_name": "a.example.com"}
    )
    assert "not attached" in body["detail"]

    url = f"{API}/applications/{e.app}/profiles/{e.profile}/enrollment/api"
    ok(await admin.put(url, json={"enabled": False}))
    body = await check.post(admin, 422, "profile", json=e.body(common_name="a.example.com"))
    assert "disabled" in body["detail"]
    ok(await admin.put(url, json={"enabled": True}))

    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/disable"))
    body = await check.post(admin, 422, "profile", json=e.body(common_name="a.example.com"))
    assert "disabled" in body["detail"]
    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/enable"))
    await issue(admin, e, common_name="a.example.com")


async def test_who_may_request(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    client_for: ClientFor,
    refusals: Refusals,
) -> None:
    e = refusals.enrollment
    body = e.body(common_name="api.example.com")
    await refusals.post(anonymous, 401, json=body)
    await refusals.post(client_for("cf_not-a-real-token"), 401, json=body)
    auditor = await member(admin, client_for, e.app, "auditor")
    await refusals.post(auditor, 403, json=body)
    other = await enroll(admin)
    outsider = await member(admin, client_for, other.app, "operator")
    await refusals.post(outsider, 404, "app", json=body)
    # Roles that may: operators and application admins.
    for role in ("operator", "application-admin"):
        await issue(await member(admin, client_for, e.app, role), e, common_name="api.example.com")
