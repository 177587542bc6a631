"""Issue 22, name constraints on CAs: a CA that can only ever sign for its own namespace.

Certforge refuses to issue outside the subtree (the api early, the issuer as the authority), and
a certificate signed outside it anyway (here by the test, holding an imported CA's key) fails
`openssl verify` and cryptography's path builder: the limit holds wherever the chain is checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from admin_kit import (
    API,
    create_policy,
    create_profile,
    create_root,
    every,
    intermediate_body,
    ok,
    problem,
    profile_body,
    uid,
)
from issuance_kit import (
    WAIT,
    Enrollment,
    audit_events,
    certificate_count,
    check_issued,
    enroll_new_application,
    inject_request,
    issue,
    poll_until_done,
    request_count,
)
from pki_tools import certificate_pem, external_certificate, openssl_verify, pkilint_errors

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SHOP = {
    "permitted": {"dns": ["shop.internal"], "ip": ["10.20.0.0/16"]},
    "excluded": {"dns": ["admin.shop.internal"]},
}


ROOT = {"permitted": {"dns": ["shop.internal", "corp.internal"], "ip": ["10.0.0.0/8"]}}


async def _cas(admin: httpx.AsyncClient) -> set[str]:
    return {ca["name"] for ca in await every(admin, f"{API}/cas")}


async def _enroll_under(
    admin: httpx.AsyncClient, root: dict[str, Any], issuing: dict[str, Any]
) -> Enrollment:
    """A profile on `issuing` whose policy allows any name: what is refused, the CA refuses."""
    policy = await create_policy(admin, subject={}, sans={})
    profile = await create_profile(admin, issuing["id"], policy["id"])
    return await enroll_new_application(admin, root, issuing, policy, profile)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop(admin: httpx.AsyncClient) -> Enrollment:
    """Root constrained to two domains, issuing CA to `shop.internal` (minus admin.)."""
    root = await create_root(admin, name_constraints=ROOT)
    body = intermediate_body(root["id"], name_constraints=SHOP)
    issuing = ok(await admin.post(f"{API}/cas", json=body), 201)
    return await _enroll_under(admin, root, issuing)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop_mid(admin: httpx.AsyncClient) -> dict[str, Any]:
    """A CA for `shop.internal` that may sign CAs (under a root for `internal`)."""
    root = await create_root(admin, max_path_length=2, name_constraints=ROOT)
    body = intermediate_body(root["id"], name_constraints=SHOP, max_path_length=1)
    mid: dict[str, Any] = ok(await admin.post(f"{API}/cas", json=body), 201)
    return mid


async def test_a_child_inside_its_parent_is_created(
    admin: httpx.AsyncClient, shop_mid: dict[str, Any]
) -> None:
    body = intermediate_body(
        shop_mid["id"],
        name_constraints={"permitted": {"dns": ["pay.shop.internal"]}, "critical": True},
        validity="2y",
    )
    child = ok(await admin.post(f"{API}/cas", json=body), 201)
    assert pkilint_errors(child["certificate"]) == ""
    openssl_verify(
        (await admin.get(f"{API}/cas/{shop_mid['parent_ca_id']}")).json()["certificate"],
        [shop_mid["certificate"]],
        child["certificate"],
    )


async def test_constrained_cas_show_their_constraints_and_lint_clean(
    api_app: Any, admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    issuing = ok(await admin.get(f"{API}/cas/{shop.issuing['id']}"))
    assert issuing["name_constraints"] == {
        "permitted": {
            "dns": ["shop.internal"],
            "ip": ["10.20.0.0/16"],
            "email": [],
            "uri": [],
            "directory_names": [],
        },
        "excluded": {"dns": ["admin.shop.internal"], "ip": [], "email": [], "uri": [],
                     "directory_names": []},
        "critical": True,
    }  # fmt: skip
    for ca in (shop.root, issuing):
        assert pkilint_errors(ca["certificate"]) == "", pkilint_errors(ca["certificate"])
        cert = x509.load_pem_x509_certificate(ca["certificate"].encode())
        assert cert.extensions.get_extension_for_class(x509.NameConstraints).critical
    openssl_verify(shop.root["certificate"], [], issuing["certificate"])
    entries = await audit_events(api_app, resource_type="ca", resource_id=issuing["id"])
    assert entries[0].details["name_constraints"]["permitted"]["dns"] == ["shop.internal"]


@pytest.mark.parametrize(
    "sans",
    [
        pytest.param([{"type": "dns", "value": "api.shop.internal"}], id="ok/dns"),
        pytest.param(
            [{"type": "dns", "value": "Pay.Shop.Internal."}, {"type": "ip", "value": "10.20.1.2"}],
            id="ok/other-spelling-and-ip",
        ),
    ],
)
async def test_issues_inside_the_subtree(
    admin: httpx.AsyncClient, shop: Enrollment, sans: list[dict[str, str]]
) -> None:
    issued = await issue(admin, shop, sans=sans)
    cert = check_issued(issued["certificate"], shop)  # openssl verify + pkilint
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"sans": [{"type": "dns", "value": "api.example.com"}]}, "sans.0.value",
                     id="fail/outside"),
        pytest.param(
            {"sans": [{"type": "dns", "value": "api.shop.internal"},
                      {"type": "dns", "value": "shop.internal.example.com"}]},
            "sans.1.value",
            id="fail/suffix-trick",
        ),
        pytest.param({"sans": [{"type": "dns", "value": "admin.shop.internal"}]}, "sans.0.value",
                     id="fail/excluded"),
        pytest.param({"sans": [{"type": "dns", "value": "*.shop.internal"}]}, "sans.0.value",
                     id="fail/wildcard-covers-excluded"),
        pytest.param({"sans": [{"type": "ip", "value": "10.30.0.1"}]}, "sans.0.value",
                     id="fail/ip-outside"),
        pytest.param({"common_name": "www.example.com",
                      "sans": [{"type": "dns", "value": "api.shop.internal"}]},
                     "common_name", id="fail/cn-outside"),
    ],
)  # fmt: skip
async def test_refuses_outside_the_subtree_and_stores_nothing(
    api_app: Any, admin: httpx.AsyncClient, shop: Enrollment, body: dict[str, Any], field: str
) -> None:
    before = await request_count(api_app, shop.app_id)
    r = await admin.post(shop.requests, headers=WAIT, json=shop.body(**body))
    refusal = problem(r, 422, field)
    assert "name constraints" in refusal["detail"], refusal
    assert await request_count(api_app, shop.app_id) == before


async def test_a_csr_cannot_smuggle_an_outside_name(
    api_app: Any, admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.shop.internal")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("api.shop.internal"), x509.DNSName("evil.example.com")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    before = await request_count(api_app, shop.app_id)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    r = await admin.post(shop.requests, headers=WAIT, json=shop.body(method="csr", csr=pem))
    refusal = problem(r, 422)
    assert "evil.example.com" in refusal["detail"], refusal
    assert await request_count(api_app, shop.app_id) == before


async def test_the_issuer_refuses_an_outside_name_on_its_own(
    api_app: Any, admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    """A request that skipped the api's check (stored directly) fails at the issuer."""
    request_id = await inject_request(
        api_app,
        shop,
        {"method": "managed", "sans": [{"type": "dns", "value": "evil.example.org"}]},
    )
    done = await poll_until_done(admin, f"{shop.requests}/{request_id}")
    assert done["status"] == "failed", done
    assert "name constraints" in done["error"], done
    assert [e["field"] for e in done["errors"]] == ["sans.0.value"]
    assert await certificate_count(api_app, str(request_id)) == 0


@pytest.mark.parametrize(
    ("constraints", "field"),
    [
        pytest.param({"permitted": {"dns": ["example.com"]}}, "name_constraints.permitted.dns.0",
                     id="fail/outside-parent"),
        pytest.param({"permitted": {"dns": ["corp.internal"]}}, "name_constraints.permitted.dns.0",
                     id="fail/beside-parent"),
        pytest.param({"permitted": {"dns": ["x.admin.shop.internal"]}},
                     "name_constraints.permitted.dns.0", id="fail/inside-parent-exclusion"),
        pytest.param({"permitted": {"ip": ["10.0.0.0/8"]}}, "name_constraints.permitted.ip.0",
                     id="fail/ip-wider"),
        pytest.param({"permitted": {"ip": ["10.20.0.1/16"]}}, "name_constraints.permitted.ip.0",
                     id="fail/ip-malformed"),
        pytest.param({"permitted": {"dns": ["a.shop.internal", "b.a.shop.internal"]}},
                     "name_constraints.permitted.dns.1", id="fail/overlapping"),
        pytest.param({"permitted": {"dns": ["*.shop.internal"]}},
                     "name_constraints.permitted.dns.0", id="fail/wildcard"),
        pytest.param({}, "name_constraints", id="fail/empty"),
        pytest.param({"permited": {"dns": ["a.shop.internal"]}}, "name_constraints.permited",
                     id="fail/typo"),
    ],
)  # fmt: skip
async def test_a_child_ca_wider_than_its_parent_is_refused(
    admin: httpx.AsyncClient, shop_mid: dict[str, Any], constraints: dict[str, Any], field: str
) -> None:
    body = intermediate_body(shop_mid["id"], name_constraints=constraints, validity="2y")
    before = await _cas(admin)
    r = await admin.post(f"{API}/cas", json=body)
    problem(r, 422, field)
    assert await _cas(admin) == before


async def test_profile_defaults_must_fit_the_cas_constraints(
    admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    body = profile_body(
        shop.issuing["id"],
        shop.policy["id"],
        defaults={"ttl": "30d", "subject": {"common_name": "www.example.com"}},
    )
    problem(await admin.post(f"{API}/profiles", json=body), 422, "defaults.subject.common_name")
    body["defaults"]["subject"]["common_name"] = "www.shop.internal"
    ok(await admin.post(f"{API}/profiles", json=body), 201)


# --- an imported constrained intermediate, and what relying parties make of it ----------------


def _path_builder_accepts(root: x509.Certificate, sub: x509.Certificate, leaf_name: str,
                          leaf: x509.Certificate) -> bool:  # fmt: skip
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(datetime.now(UTC))
        .build_server_verifier(x509.DNSName(leaf_name))
    )
    try:
        verifier.verify(leaf, [sub])
    except VerificationError:
        return False
    return True


async def test_imported_constrained_ca_outside_names_fail_everywhere(
    admin: httpx.AsyncClient,
) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = external_certificate("Test Root", root_key, None, ca=True)
    sub_key = ec.generate_private_key(ec.SECP256R1())
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("shop.internal")],
        excluded_subtrees=[x509.DNSName("admin.shop.internal")],
    )
    sub = external_certificate(
        "Shop Issuing", sub_key, (root, root_key), ca=True, constraints=constraints
    )
    imported = ok(
        await admin.post(
            f"{API}/cas/import",
            json={
                "name": uid("shop-ext"),
                "certificate": certificate_pem(sub),
                "private_key": sub_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "chain": certificate_pem(root),
            },
        ),
        201,
    )
    assert imported["name_constraints"]["permitted"]["dns"] == ["shop.internal"]
    assert imported["name_constraints"]["excluded"]["dns"] == ["admin.shop.internal"]
    assert pkilint_errors(imported["certificate"]) == ""

    # What a relying party sees: inside verifies, outside fails, in both verifiers.
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    for name, valid in (
        ("api.shop.internal", True),
        ("evil.example.com", False),
        ("admin.shop.internal", False),
    ):
        leaf = external_certificate(name, leaf_key, (sub, sub_key), ca=False, san=name)
        assert _path_builder_accepts(root, sub, name, leaf) is valid, name
        if valid:
            openssl_verify(certificate_pem(root), [certificate_pem(sub)], certificate_pem(leaf))
        else:
            with pytest.raises(AssertionError, match="subtree violation"):
                openssl_verify(certificate_pem(root), [certificate_pem(sub)], certificate_pem(leaf))

    # And Certforge, signing with that CA, refuses the outside name before signing.
    e = await _enroll_under(admin, {"certificate": certificate_pem(root)}, imported)
    refusal = problem(
        await admin.post(
            e.requests,
            headers=WAIT,
            json=e.body(sans=[{"type": "dns", "value": "evil.example.com"}]),
        ),
        422,
        "sans.0.value",
    )
    assert "shop.internal" in refusal["detail"]
    issued = await issue(admin, e, sans=[{"type": "dns", "value": "api.shop.internal"}])
    openssl_verify(
        certificate_pem(root), [certificate_pem(sub)], issued["certificate"]["certificate"]
    )


async def test_every_subtree_form_is_carried_and_lint_clean(admin: httpx.AsyncClient) -> None:
    constraints = {
        "permitted": {
            "dns": ["shop.internal"],
            "ip": ["10.20.0.0/16", "fd00::/8"],
            "email": [".shop.internal", "ops@corp.internal"],
            "uri": ["shop.internal", ".shop.internal"],
            "directory_names": ["O=Example"],
        },
        "excluded": {"dns": ["admin.shop.internal"], "ip": ["10.20.9.0/24"]},
    }
    root = await create_root(admin, name_constraints=constraints)
    assert root["name_constraints"]["permitted"]["email"] == [".shop.internal", "ops@corp.internal"]
    assert pkilint_errors(root["certificate"]) == "", pkilint_errors(root["certificate"])
    cert = x509.load_pem_x509_certificate(root["certificate"].encode())
    ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert len(ext.value.permitted_subtrees or []) == 8
    assert len(ext.value.excluded_subtrees or []) == 2

    # Non-critical on request (CA/Browser Forum allows it; RFC 5280, and so pkilint, do not).
    loose = await create_root(admin, name_constraints={**constraints, "critical": False})
    cert = x509.load_pem_x509_certificate(loose["certificate"].encode())
    assert not cert.extensions.get_extension_for_class(x509.NameConstraints).critical
    assert "name_constraints_extension_not_critical" in pkilint_errors(loose["certificate"])
