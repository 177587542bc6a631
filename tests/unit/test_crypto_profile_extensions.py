"""The leaf builder with a profile's extensions: each kind lands as declared, the certificate
stays pkilint-clean and verifies with openssl, and `openssl x509 -text` shows them."""

from __future__ import annotations

import base64
import functools
import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from certforge.common.crypto.certificates import (
    build_certificate,
    build_self_signed_ca,
    certificate_to_pem,
    extension_summaries,
    key_identifier,
    key_identifier_of,
    new_serial,
)
from certforge.common.crypto.keys import PrivateKey, generate_private_key
from certforge.common.domain import ExtendedKeyUsage, KeyAlgorithm, SanType, SubjectFields
from certforge.common.profile_extensions import ProfileExtensions, SkiMethod
from certforge.common.template import CertificateTemplate, San
from pki_tools import openssl_verify, pkilint_errors

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CRL = "http://pki.example.com/crl/ca.crl"
OCSP = "http://pki.example.com/ocsp"
CA_ISSUERS = "http://pki.example.com/ca/ca.der"
CUSTOM = "1.3.6.1.4.1.55555.2."

EVERY_KIND = {
    "certificate_policies": [
        {
            "oid": "1.3.6.1.4.1.55555.1.1",
            "cps_uri": "https://pki.example.com/cps",
            "user_notice": "Certforge test policy",
        },
        {"oid": "2.23.140.1.2.1"},
    ],
    "must_staple": True,
    "custom": [
        {"oid": CUSTOM + "1", "value": {"der": base64.b64encode(b"\x30\x03\x02\x01\x07").decode()}},
        {"oid": CUSTOM + "2", "value": {"utf8_string": "shop"}},
        {"oid": CUSTOM + "3", "value": {"octet_string": base64.b64encode(b"\x01\x02").decode()}},
        {"oid": CUSTOM + "4", "critical": True, "value": {"boolean": True}},
        {"oid": CUSTOM + "5", "value": {"integer": 4242}},
    ],
}


@functools.cache
def key(alg: KeyAlgorithm, role: str) -> PrivateKey:
    return generate_private_key(alg)


@functools.cache
def ca(alg: KeyAlgorithm) -> x509.Certificate:
    return build_self_signed_ca(
        SubjectFields(common_name=f"Root {alg.value}", organization="Acme"),
        key(alg, "ca"),
        NOW,
        NOW + timedelta(days=3650),
        None,
        None,
    )


def leaf(extensions: dict[str, Any], alg: KeyAlgorithm = KeyAlgorithm.EC_P256) -> x509.Certificate:
    template = CertificateTemplate(
        subject=SubjectFields(common_name="www.shop.internal"),
        sans=[San(type=SanType.DNS, value="www.shop.internal")],
        key_algorithm=alg,
        extended_key_usages=[ExtendedKeyUsage.SERVER_AUTH],
        not_before=NOW,
        not_after=NOW + timedelta(days=30),
    )
    return build_certificate(
        template,
        key(alg, "leaf").public_key(),
        ca(alg).subject,
        key(alg, "ca"),
        key_identifier_of(ca(alg)),
        new_serial(),
        crl_url=CRL,
        ocsp_url=OCSP,
        ca_issuers_url=CA_ISSUERS,
        extensions=ProfileExtensions.model_validate(extensions),
    )


def test_without_profile_extensions_nothing_changes() -> None:
    oids = [oid for oid, _, _ in extension_summaries(leaf({}))]
    assert ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string in oids
    assert ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string in oids
    assert ExtensionOID.CERTIFICATE_POLICIES.dotted_string not in oids
    assert ExtensionOID.TLS_FEATURE.dotted_string not in oids


@pytest.mark.parametrize("alg", list(KeyAlgorithm), ids=lambda a: f"ok/{a.value}")
def test_every_kind_lands_lints_clean_and_verifies(alg: KeyAlgorithm) -> None:
    cert = leaf(EVERY_KIND, alg)
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert not policies.critical
    first, second = policies.value
    assert first.policy_identifier.dotted_string == "1.3.6.1.4.1.55555.1.1"
    assert first.policy_qualifiers == [
        "https://pki.example.com/cps",
        x509.UserNotice(None, "Certforge test policy"),
    ]
    assert second.policy_qualifiers is None
    feature = cert.extensions.get_extension_for_class(x509.TLSFeature)
    assert list(feature.value) == [x509.TLSFeatureType.status_request]
    assert not feature.critical
    custom = {
        e.oid.dotted_string: (e.critical, e.value.value)
        for e in cert.extensions
        if e.oid.dotted_string.startswith(CUSTOM)
    }
    assert custom == {
        CUSTOM + "1": (False, b"\x30\x03\x02\x01\x07"),
        CUSTOM + "2": (False, b"\x0c\x04shop"),
        CUSTOM + "3": (False, b"\x04\x02\x01\x02"),
        CUSTOM + "4": (True, b"\x01\x01\xff"),
        CUSTOM + "5": (False, b"\x02\x02\x10\x92"),
    }
    pem = certificate_to_pem(cert)
    assert pkilint_errors(pem) == ""
    # openssl refuses an unknown critical extension, as a relying party must: verify the leaf
    # with it non-critical, and the refusal with it critical.
    relaxed = {**EVERY_KIND, "custom": [{**c, "critical": False} for c in EVERY_KIND["custom"]]}
    openssl_verify(
        certificate_to_pem(ca(alg)),
        [],
        certificate_to_pem(leaf(relaxed, alg)),
        at=NOW + timedelta(hours=1),
        purpose="sslserver",
    )
    with pytest.raises(AssertionError, match=r"unhandled critical extension|unsupported"):
        openssl_verify(certificate_to_pem(ca(alg)), [], pem, at=NOW + timedelta(hours=1))


def test_openssl_text_shows_them() -> None:
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"],
        input=certificate_to_pem(leaf(EVERY_KIND)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for shown in (
        "X509v3 Certificate Policies",
        "Policy: 1.3.6.1.4.1.55555.1.1",
        "CPS: https://pki.example.com/cps",
        "Explicit Text: Certforge test policy",
        "Policy: 2.23.140.1.2.1",
        "TLS Feature",
        "status_request",
        "1.3.6.1.4.1.55555.2.4: critical",
        "1.3.6.1.4.1.55555.2.2:",
    ):
        assert shown in text, f"{shown!r} not in:\n{text}"


SWITCHES = [
    pytest.param({"aia": False}, {"cRLDistributionPoints"}, id="ok/no-aia"),
    pytest.param({"crl_distribution_points": False}, {"authorityInfoAccess"}, id="ok/no-cdp"),
    pytest.param({"aia": False, "crl_distribution_points": False}, set(), id="ok/neither"),
]


@pytest.mark.parametrize(("extensions", "pointers"), SWITCHES)
def test_aia_and_cdp_switch_off(extensions: dict[str, Any], pointers: set[str]) -> None:
    cert = leaf(extensions)
    names = {name for _, name, _ in extension_summaries(cert)}
    assert names & {"authorityInfoAccess", "cRLDistributionPoints"} == pointers
    assert pkilint_errors(certificate_to_pem(cert)) == ""


@pytest.mark.parametrize("alg", list(KeyAlgorithm), ids=lambda a: f"ok/{a.value}")
def test_sha256_key_identifier_is_rfc7093_method_1(alg: KeyAlgorithm) -> None:
    cert = leaf({"subject_key_identifier": "sha256"}, alg)
    spki = (
        key(alg, "leaf")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    sha1 = key_identifier(key(alg, "leaf").public_key())
    # the subjectPublicKey bits are the tail of the SPKI; SHA-1 over them is method 1 (RFC 5280)
    bits = next(spki[i:] for i in range(len(spki)) if hashlib.sha1(spki[i:]).digest() == sha1)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ski == hashlib.sha256(bits).digest()[:20]
    assert ski == key_identifier(key(alg, "leaf").public_key(), SkiMethod.SHA256)
    assert pkilint_errors(certificate_to_pem(cert)) == ""


def test_summaries_name_known_and_custom_extensions() -> None:
    summaries = extension_summaries(leaf(EVERY_KIND))
    assert ("2.5.29.19", "basicConstraints", True) in summaries
    assert ("1.3.6.1.5.5.7.1.24", "TLSFeature", False) in summaries
    assert ("2.5.29.32", "certificatePolicies", False) in summaries
    assert (CUSTOM + "4", "unknown", True) in summaries
