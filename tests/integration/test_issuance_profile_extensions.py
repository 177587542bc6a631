"""Issue 22, the extensions profiles may set: declared on the profile, put in certificates by the
issuer (renewals get the profile's current ones), shown by the API and the inventory; a CSR
cannot smuggle extensions in; bad declarations are a 422 on the field and change nothing."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from admin_kit import API, every, ok, problem, profile_body
from certforge.common.crypto.csr import csr_to_pem
from issuance_kit import WAIT, Enrollment, check_issued, enroll, issue

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

POLICY_OID = "1.3.6.1.4.1.55555.1.1"
CUSTOM_OID = "1.3.6.1.4.1.55555.2.1"
EXTENSIONS = {
    "certificate_policies": [{"oid": POLICY_OID, "cps_uri": "https://pki.example.com/cps"}],
    "must_staple": True,
    "custom": [{"oid": CUSTOM_OID, "value": {"utf8_string": "shop"}}],
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stapled(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin, extensions=EXTENSIONS)


def _cert(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued["certificate"]["certificate"].encode())


def _oids(cert: x509.Certificate) -> set[str]:
    return {e.oid.dotted_string for e in cert.extensions}


def _managed(host: str = "www.example.com") -> dict[str, Any]:
    return {"common_name": host, "sans": [{"type": "dns", "value": host}]}


async def test_profile_shows_its_extensions(admin: httpx.AsyncClient, stapled: Enrollment) -> None:
    profile = ok(await admin.get(f"{API}/profiles/{stapled.profile}"))
    assert profile["extensions"]["must_staple"] is True
    assert profile["extensions"]["certificate_policies"][0]["oid"] == POLICY_OID
    assert profile["extensions"]["custom"][0]["value"]["utf8_string"] == "shop"
    assert profile["extensions"]["aia"] is True
    assert profile["extensions"]["subject_key_identifier"] == "sha1"


async def test_issued_certificate_carries_policy_and_must_staple(
    admin: httpx.AsyncClient, stapled: Enrollment
) -> None:
    issued = await issue(admin, stapled, **_managed())
    cert = check_issued(issued["certificate"], stapled)  # openssl verify + pkilint clean
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [POLICY_OID]
    assert policies[0].policy_qualifiers == ["https://pki.example.com/cps"]
    feature = cert.extensions.get_extension_for_class(x509.TLSFeature)
    assert list(feature.value) == [x509.TLSFeatureType.status_request]
    custom = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(CUSTOM_OID))
    assert custom.value.value == b"\x0c\x04shop"

    shown = ok(await admin.get(f"{stapled.certificates}/{issued['certificate']['id']}"))
    summary = {e["oid"]: (e["name"], e["critical"]) for e in shown["extensions"]}
    assert summary[ExtensionOID.TLS_FEATURE.dotted_string] == ("TLSFeature", False)
    assert summary[ExtensionOID.CERTIFICATE_POLICIES.dotted_string] == (
        "certificatePolicies",
        False,
    )
    assert summary[CUSTOM_OID] == ("unknown", False)
    assert summary[ExtensionOID.BASIC_CONSTRAINTS.dotted_string] == ("basicConstraints", True)
    inventory = ok(await admin.get(f"{API}/certificates", params={"q": "www.example.com"}))
    listed = next(c for c in inventory["items"] if c["id"] == issued["certificate"]["id"])
    assert listed["extensions"] == shown["extensions"]


async def test_csr_cannot_smuggle_extensions(admin: httpx.AsyncClient, stapled: Enrollment) -> None:
    """Asked-for extensions are ignored: the certificate has what the profile says, no more.
    (A critical one the profile does not add is refused: see the next test.)"""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.example.com")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("csr.example.com")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.666.1"), b"\x05\x00"),
            critical=False,
        )
        .add_extension(  # the profile's own custom OID, with another value
            x509.UnrecognizedExtension(x509.ObjectIdentifier(CUSTOM_OID), b"\x0c\x04evil"),
            critical=True,
        )
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), None)]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    issued = await issue(admin, stapled, method="csr", csr=csr_to_pem(csr))
    cert = check_issued(issued["certificate"], stapled)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert "1.3.6.1.4.1.666.1" not in _oids(cert)
    custom = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(CUSTOM_OID))
    assert (custom.critical, custom.value.value) == (False, b"\x0c\x04shop")
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [POLICY_OID]


@pytest.mark.parametrize(
    "extension",
    [
        pytest.param(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.666.1"), b"\x05\x00"),
            id="fail/unknown-critical-oid",
        ),
        pytest.param(
            x509.TLSFeature([x509.TLSFeatureType.status_request]),
            id="fail/critical-must-staple-the-profile-does-not-add",
        ),
    ],
)
async def test_csr_marking_critical_what_the_profile_does_not_add_is_refused(
    admin: httpx.AsyncClient, extension: x509.ExtensionType
) -> None:
    """The requester says it must not be used without that extension; it would be missing."""
    plain = await enroll(admin)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.example.com")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("csr.example.com")]), critical=False
        )
        .add_extension(extension, critical=True)
        .sign(key, hashes.SHA256())
    )
    body = problem(
        await admin.post(plain.requests, json=plain.body(method="csr", csr=csr_to_pem(csr))),
        422,
        "csr",
    )
    assert "does not add" in body["detail"]
    assert ok(await admin.get(plain.requests))["items"] == []


async def test_csr_asking_for_must_staple_without_the_profile_gets_none(
    admin: httpx.AsyncClient,
) -> None:
    plain = await enroll(admin)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.example.com")]))
        .add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
        .sign(key, hashes.SHA256())
    )
    issued = await issue(admin, plain, method="csr", csr=csr_to_pem(csr))
    cert = check_issued(issued["certificate"], plain)
    assert ExtensionOID.TLS_FEATURE.dotted_string not in _oids(cert)
    assert ExtensionOID.CERTIFICATE_POLICIES.dotted_string not in _oids(cert)


async def test_renewal_gets_the_profiles_current_extensions(admin: httpx.AsyncClient) -> None:
    e = await enroll(admin, extensions={"must_staple": True})
    first = await issue(admin, e, **_managed("renew.example.com"))
    assert ExtensionOID.TLS_FEATURE.dotted_string in _oids(_cert(first))
    changed = {"certificate_policies": [{"oid": POLICY_OID}], "aia": False}
    ok(await admin.patch(f"{API}/profiles/{e.profile}", json={"extensions": changed}))
    r = await admin.post(
        f"{e.certificates}/{first['certificate']['id']}/renew", headers=WAIT, json={}
    )
    assert r.status_code == 201, r.text
    renewed = x509.load_pem_x509_certificate(r.json()["certificate"]["certificate"].encode())
    oids = _oids(renewed)
    assert ExtensionOID.TLS_FEATURE.dotted_string not in oids
    assert ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string not in oids
    assert ExtensionOID.CERTIFICATE_POLICIES.dotted_string in oids


BAD = [
    pytest.param(
        {"custom": [{"oid": "1.2.x", "value": {"boolean": True}}]},
        "extensions.custom.0.oid",
        id="fail/oid",
    ),
    pytest.param(
        {"custom": [{"oid": "1.2.3", "value": {"der": base64.b64encode(b"\x30\x05").decode()}}]},
        "extensions.custom.0.value.der",
        id="fail/not-der",
    ),
    pytest.param(
        {"custom": [{"oid": "2.5.29.19", "critical": True, "value": {"boolean": True}}]},
        "extensions.custom.0.oid",
        id="fail/basic-constraints-as-custom",
    ),
    pytest.param(
        {
            "custom": [
                {"oid": "1.2.3", "value": {"boolean": True}},
                {"oid": "1.2.3", "critical": True, "value": {"integer": 1}},
            ]
        },
        "extensions.custom.1.oid",
        id="fail/duplicate",
    ),
    pytest.param(
        {"certificate_policies": [{"oid": "1.2.3", "cps_uri": "file:///etc/cps"}]},
        "extensions.certificate_policies.0.cps_uri",
        id="fail/cps-uri",
    ),
    pytest.param(
        {"subject_key_identifier": "md5"}, "extensions.subject_key_identifier", id="fail/ski"
    ),
]


@pytest.mark.parametrize(("extensions", "field"), BAD)
async def test_bad_extensions_are_422_on_the_field_and_change_nothing(
    admin: httpx.AsyncClient, stapled: Enrollment, extensions: dict[str, Any], field: str
) -> None:
    before = await every(admin, f"{API}/profiles")
    body = profile_body(stapled.issuing["id"], stapled.policy["id"], extensions=extensions)
    problem(await admin.post(f"{API}/profiles", json=body), 422, field)
    r = await admin.patch(f"{API}/profiles/{stapled.profile}", json={"extensions": extensions})
    problem(r, 422, field)
    assert await every(admin, f"{API}/profiles") == before


async def test_renewal_csr_marking_critical_what_the_profile_does_not_add_is_refused(
    admin: httpx.AsyncClient,
) -> None:
    plain = await enroll(admin)
    key = ec.generate_private_key(ec.SECP256R1())

    def csr(*critical: x509.ExtensionType) -> str:
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ren.example.com")]))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("ren.example.com")]), critical=False
            )
        )
        for extension in critical:
            builder = builder.add_extension(extension, critical=True)
        return csr_to_pem(builder.sign(key, hashes.SHA256()))

    issued = await issue(admin, plain, method="csr", csr=csr())
    certificate_id = issued["certificate_id"]
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.666.2"), b"\x05\x00")
    body = problem(
        await admin.post(
            f"{plain.certificates}/{certificate_id}/renew",
            json={"key": "csr", "csr": csr(unknown)},
        ),
        422,
        "csr",
    )
    assert "does not add" in body["detail"]
    shown = ok(await admin.get(f"{plain.certificates}/{certificate_id}"))
    assert shown["status"] == "active"
    assert shown["renewed_by_id"] is None
