"""Certificates: every key algorithm in every chain position passes openssl and pkilint."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from certforge.common.crypto.certificates import (
    build_certificate,
    build_intermediate_ca,
    build_self_signed_ca,
    certificate_to_der,
    certificate_to_pem,
    fingerprint_sha256,
    key_identifier,
    key_identifier_of,
    load_certificate_chain_pem,
    load_certificate_pem,
    new_serial,
    verify_issued_by,
)
from certforge.common.crypto.keys import PrivateKey, generate_private_key, private_key_to_pkcs8_pem
from certforge.common.crypto.names import subject_to_name
from certforge.common.domain import (
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    SanType,
    SignatureHash,
    SubjectFields,
)
from certforge.common.errors import InvalidInput, Unprocessable
from certforge.common.template import CertificateTemplate, San
from certforge.issuer import lint
from pki_tools import openssl_verify, pkilint_cli_errors, pkilint_errors

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
AT = NOW + timedelta(hours=1)
CRL = "http://pki.example.com/crl/inter.crl"
OCSP = "http://pki.example.com/ocsp"
CA_ISSUERS = "http://pki.example.com/ca/inter.der"

A = KeyAlgorithm


@functools.cache
def key(alg: KeyAlgorithm, role: str) -> PrivateKey:
    """One key per algorithm and chain position, generated once per session."""
    return generate_private_key(alg)


def root_ca(alg: KeyAlgorithm, **overrides: Any) -> x509.Certificate:
    fields: dict[str, Any] = {
        "subject": SubjectFields(
            common_name=f"Root {alg.value}", organization="Acme", country="DE"
        ),
        "key": key(alg, "root"),
        "not_before": NOW,
        "not_after": NOW + timedelta(days=3650),
        "path_length": None,
        "signature_hash": None,
    }
    return build_self_signed_ca(**{**fields, **overrides})


def intermediate_ca(
    alg: KeyAlgorithm, root: x509.Certificate, root_key: PrivateKey, **overrides: Any
) -> x509.Certificate:
    fields: dict[str, Any] = {
        "subject": SubjectFields(common_name=f"Issuing {alg.value}", organization="Acme"),
        "public_key": key(alg, "inter").public_key(),
        "issuer_cert": root,
        "issuer_key": root_key,
        "not_before": NOW,
        "not_after": NOW + timedelta(days=1825),
        "path_length": 0,
        "signature_hash": None,
        "crl_url": CRL.replace("inter", "root"),
        "ca_issuers_url": CA_ISSUERS.replace("inter", "root"),
    }
    return build_intermediate_ca(**{**fields, **overrides})


def leaf_template(alg: KeyAlgorithm, **overrides: Any) -> CertificateTemplate:
    fields: dict[str, Any] = {
        "subject": SubjectFields(common_name="api.example.com"),
        "sans": [
            San(type=SanType.DNS, value="api.example.com"),
            San(type=SanType.IP, value="192.0.2.10"),
        ],
        "key_algorithm": alg,
        "extended_key_usages": [ExtendedKeyUsage.SERVER_AUTH, ExtendedKeyUsage.CLIENT_AUTH],
        "not_before": NOW,
        "not_after": NOW + timedelta(days=90),
    }
    return CertificateTemplate(**{**fields, **overrides})


def issue_leaf(
    template: CertificateTemplate,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    public_key: Any = None,
) -> x509.Certificate:
    return build_certificate(
        template,
        public_key or key(template.key_algorithm, "leaf").public_key(),
        issuer.subject,
        issuer_key,
        key_identifier_of(issuer),
        new_serial(),
        crl_url=CRL,
        ocsp_url=OCSP,
        ca_issuers_url=CA_ISSUERS,
    )


def assert_clean(*certs: x509.Certificate) -> None:
    for cert in certs:
        findings = pkilint_errors(certificate_to_pem(cert))
        assert findings == "", f"{cert.subject.rfc4514_string()}:\n{findings}"


CHAINS = [
    *[pytest.param(alg, alg, alg, id=f"ok/all-{alg.value}") for alg in KeyAlgorithm],
    pytest.param(A.RSA_4096, A.EC_P256, A.ED25519, id="ok/rsa-ec-ed25519"),
    pytest.param(A.ED25519, A.RSA_2048, A.EC_P384, id="ok/ed25519-rsa-ec"),
    pytest.param(A.EC_P521, A.RSA_3072, A.EC_P256, id="ok/p521-rsa-p256"),
    pytest.param(A.EC_P384, A.ED25519, A.RSA_2048, id="ok/p384-ed25519-rsa"),
    pytest.param(A.RSA_3072, A.EC_P521, A.RSA_4096, id="ok/rsa-p521-rsa"),
]


@pytest.mark.parametrize(("root_alg", "inter_alg", "leaf_alg"), CHAINS)
def test_chain_verifies_and_lints_clean(
    root_alg: KeyAlgorithm, inter_alg: KeyAlgorithm, leaf_alg: KeyAlgorithm
) -> None:
    root = root_ca(root_alg)
    inter = intermediate_ca(inter_alg, root, key(root_alg, "root"))
    leaf = issue_leaf(leaf_template(leaf_alg), inter, key(inter_alg, "inter"))

    openssl_verify(
        certificate_to_pem(root),
        [certificate_to_pem(inter)],
        certificate_to_pem(leaf),
        at=AT,
        purpose="sslserver",
    )
    assert_clean(root, inter, leaf)
    assert verify_issued_by(inter, root)
    assert verify_issued_by(leaf, inter)
    assert not verify_issued_by(leaf, root)
    assert verify_issued_by(root, root)


def test_root_shape() -> None:
    root = build_certificate(
        CertificateTemplate(
            subject=SubjectFields(common_name="Root", country="DE"),
            key_algorithm=A.EC_P256,
            not_before=NOW,
            not_after=NOW + timedelta(days=10),
            is_ca=True,
            path_length=1,
        ),
        key(A.EC_P256, "root").public_key(),
        subject_to_name(SubjectFields(common_name="Root", country="DE")),
        key(A.EC_P256, "root"),
        b"ignored for self-signed",
        new_serial(),
        crl_url=CRL,
        ocsp_url=OCSP,
        ca_issuers_url=CA_ISSUERS,
    )
    ext = root.extensions
    assert root.version is x509.Version.v3
    assert root.issuer == root.subject
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 1
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert usage.value.digital_signature
    assert not usage.value.key_encipherment
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski
    assert aki.authority_cert_issuer is None
    for absent in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            ext.get_extension_for_class(absent)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert_clean(root)


def test_issued_certificate_shape() -> None:
    root = root_ca(A.EC_P384)
    inter = intermediate_ca(A.EC_P256, root, key(A.EC_P384, "root"))
    leaf = issue_leaf(leaf_template(A.RSA_2048), inter, key(A.EC_P256, "inter"))
    ext = leaf.extensions

    assert isinstance(inter.signature_hash_algorithm, hashes.SHA384)  # P-384 signer default
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    assert 64 <= leaf.serial_number.bit_length() <= 159
    assert leaf.issuer == inter.subject
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_encipherment) == (True, True)  # RSA default
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not ext.get_extension_for_class(x509.SubjectAlternativeName).critical
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == key_identifier_of(inter)
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == key_identifier(
        leaf.public_key()
    )
    (point,) = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert point.full_name == [x509.UniformResourceIdentifier(CRL)]
    access = {
        d.access_method: d.access_location.value
        for d in ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    }
    assert access == {
        AuthorityInformationAccessOID.OCSP: OCSP,
        AuthorityInformationAccessOID.CA_ISSUERS: CA_ISSUERS,
    }


def test_ec_leaf_defaults_to_digital_signature_only() -> None:
    root = root_ca(A.EC_P256)
    leaf = issue_leaf(leaf_template(A.EC_P256), root, key(A.EC_P256, "root"))
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_encipherment
    assert not usage.key_agreement


def test_leaf_with_empty_subject_has_critical_san_and_verifies() -> None:
    root = root_ca(A.EC_P256)
    inter = intermediate_ca(A.ED25519, root, key(A.EC_P256, "root"))
    template = leaf_template(
        A.EC_P256,
        subject=SubjectFields(),
        sans=[
            San(type=SanType.DNS, value="svc.example.com"),
            San(type=SanType.EMAIL, value="ops@example.com"),
            San(type=SanType.URI, value="https://example.com/svc"),
        ],
        extended_key_usages=[ExtendedKeyUsage.CLIENT_AUTH],
    )
    leaf = issue_leaf(template, inter, key(A.ED25519, "inter"))
    assert len(leaf.subject) == 0
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    openssl_verify(
        certificate_to_pem(root),
        [certificate_to_pem(inter)],
        certificate_to_pem(leaf),
        at=AT,
        purpose="sslclient",
    )
    assert_clean(leaf)


@pytest.mark.parametrize(
    ("san", "crl_url"),
    [
        pytest.param("spiffe://example.org/ns/prod/sa/api", CRL, id="spiffe-san"),
        pytest.param("https://example.com/svc", "http://localhost:8000/crl/a.crl", id="localhost"),
    ],
)
def test_pkilint_flags_uris_outside_its_allowlist(san: str, crl_url: str) -> None:
    """A known pkilint limitation, pinned so we notice when it changes.

    pkilint checks URIs with `validators.url`, which accepts only web-like schemes (http, https,
    ftp, …) and dotted host names, so a SPIFFE SAN or a `http://localhost` CRL/AIA URL is an ERROR
    although RFC 5280 allows both. Dev settings should use 127.0.0.1.
    """
    root = root_ca(A.EC_P256)
    template = leaf_template(A.EC_P256, sans=[San(type=SanType.URI, value=san)])
    leaf = build_certificate(
        template,
        key(A.EC_P256, "leaf").public_key(),
        root.subject,
        key(A.EC_P256, "root"),
        key_identifier_of(root),
        new_serial(),
        crl_url=crl_url,
    )
    assert "pkix.invalid_uri_syntax" in pkilint_errors(certificate_to_pem(leaf))


def test_explicit_signature_hash_is_used() -> None:
    root = root_ca(A.RSA_2048, signature_hash=SignatureHash.SHA512)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA512)
    assert_clean(root)


def test_ed25519_signer_signs_without_hash() -> None:
    root = root_ca(A.ED25519)
    assert root.signature_hash_algorithm is None
    with pytest.raises(Unprocessable) as caught:
        root_ca(A.ED25519, signature_hash=SignatureHash.SHA256)
    assert caught.value.errors[0].field == "signature_hash"


def test_path_length_zero_is_enforced_by_openssl() -> None:
    """Also proves `openssl_verify` fails when it should."""
    root = root_ca(A.EC_P256)
    inter = intermediate_ca(A.EC_P256, root, key(A.EC_P256, "root"), path_length=0)
    sub = intermediate_ca(
        A.EC_P384,
        inter,
        key(A.EC_P256, "inter"),
        public_key=key(A.EC_P384, "sub").public_key(),
        subject=SubjectFields(common_name="Sub"),
    )
    leaf = issue_leaf(leaf_template(A.EC_P256), sub, key(A.EC_P384, "sub"))
    with pytest.raises(AssertionError, match="path length"):
        openssl_verify(
            certificate_to_pem(root),
            [certificate_to_pem(inter), certificate_to_pem(sub)],
            certificate_to_pem(leaf),
            at=AT,
        )


def test_microseconds_are_dropped() -> None:
    root = root_ca(A.EC_P256, not_before=NOW.replace(microsecond=123456))
    assert root.not_valid_before_utc == NOW


REFUSALS = [
    pytest.param(
        {"is_ca": True, "subject": SubjectFields(), "key_usages": [KeyUsage.KEY_CERT_SIGN]},
        "subject",
        id="fail/ca-empty-subject",
    ),
    pytest.param({"subject": SubjectFields(), "sans": []}, "subject", id="fail/no-identity"),
    pytest.param({"path_length": 0}, "path_length", id="fail/leaf-path-length"),
    pytest.param(
        {"is_ca": True, "key_usages": [KeyUsage.DIGITAL_SIGNATURE]},
        "key_usages",
        id="fail/ca-without-cert-sign",
    ),
    pytest.param(
        {"key_usages": [KeyUsage.KEY_CERT_SIGN]}, "key_usages", id="fail/leaf-with-cert-sign"
    ),
    pytest.param(
        {"key_usages": [KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT]},
        "key_usages",
        id="fail/ec-key-encipherment",
    ),
    pytest.param(
        {"key_usages": [KeyUsage.DIGITAL_SIGNATURE, KeyUsage.ENCIPHER_ONLY]},
        "key_usages",
        id="fail/encipher-only-without-agreement",
    ),
    pytest.param({"key_algorithm": A.RSA_2048}, "key_algorithm", id="fail/key-mismatch"),
]


@pytest.mark.parametrize(("overrides", "field"), REFUSALS)
def test_templates_that_would_break_rfc5280_are_refused(
    overrides: dict[str, Any], field: str
) -> None:
    root = root_ca(A.EC_P256)
    template = leaf_template(A.EC_P256, **overrides)
    with pytest.raises(Unprocessable) as caught:
        issue_leaf(template, root, key(A.EC_P256, "root"), key(A.EC_P256, "leaf").public_key())
    assert caught.value.errors[0].field == field


@pytest.mark.parametrize(
    "usages",
    [[KeyUsage.KEY_AGREEMENT], [KeyUsage.DATA_ENCIPHERMENT]],
    ids=["fail/ed25519-agreement", "fail/ed25519-encipherment"],
)
def test_ed25519_only_signs(usages: list[KeyUsage]) -> None:
    root = root_ca(A.EC_P256)
    with pytest.raises(Unprocessable, match="ED25519"):
        issue_leaf(leaf_template(A.ED25519, key_usages=usages), root, key(A.EC_P256, "root"))


def test_serial_bounds() -> None:
    values = iter([0, 5 << 100])
    assert new_serial(lambda bits: next(values)) == 5 << 100
    assert all(0 < new_serial() < 1 << 159 for _ in range(50))
    root = root_ca(A.EC_P256)
    for serial in (0, -1, 1 << 159, 12345):
        with pytest.raises(ValueError, match="serial"):
            build_certificate(
                leaf_template(A.EC_P256),
                key(A.EC_P256, "leaf").public_key(),
                root.subject,
                key(A.EC_P256, "root"),
                key_identifier_of(root),
                serial,
            )


def test_pem_round_trip_and_fingerprint() -> None:
    root = root_ca(A.EC_P256)
    pem = certificate_to_pem(root)
    assert load_certificate_pem(pem) == root
    assert load_certificate_pem(pem.encode()) == root
    fingerprint = fingerprint_sha256(root)
    assert fingerprint == hashlib.sha256(certificate_to_der(root)).hexdigest()
    assert len(fingerprint) == 64
    assert fingerprint == fingerprint.lower()


def test_chain_loads_in_order() -> None:
    root = root_ca(A.EC_P256)
    inter = intermediate_ca(A.EC_P384, root, key(A.EC_P256, "root"))
    chain = load_certificate_chain_pem(certificate_to_pem(inter) + "\n" + certificate_to_pem(root))
    assert chain == [inter, root]


def _pem_cases() -> list[Any]:
    pem = certificate_to_pem(root_ca(A.EC_P256))
    body = pem.splitlines()
    truncated = "\n".join(body[:4] + body[-1:]) + "\n"
    secret_key = private_key_to_pkcs8_pem(key(A.EC_P256, "leaf"))
    return [
        pytest.param("", "no PEM", id="fail/empty"),
        pytest.param("hello", "no PEM", id="fail/garbage"),
        pytest.param(truncated, "malformed", id="fail/truncated"),
        pytest.param(pem[: len(pem) // 2], "malformed", id="fail/cut-in-half"),
        pytest.param(pem.replace("MII", "MIX", 1), "malformed", id="fail/corrupt-der"),
        pytest.param(pem + pem, "expected one", id="fail/two-certificates"),
        pytest.param(pem + secret_key, "only CERTIFICATE", id="fail/private-key-block"),
    ]


@pytest.mark.parametrize(("text", "message"), _pem_cases())
def test_bad_pem_is_invalid_input_without_echo(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        load_certificate_pem(text)
    assert caught.value.errors[0].field == "certificate"
    assert "-----" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_in_process_pkilint_agrees_with_the_cli() -> None:
    root = root_ca(A.RSA_2048)
    inter = intermediate_ca(A.EC_P256, root, key(A.RSA_2048, "root"))
    clean = issue_leaf(leaf_template(A.ED25519), inter, key(A.EC_P256, "inter"))
    assert pkilint_cli_errors(certificate_to_pem(clean)) == ""
    flagged = issue_leaf(
        leaf_template(A.EC_P256, sans=[San(type=SanType.URI, value="spiffe://example.org/x")]),
        inter,
        key(A.EC_P256, "inter"),
    )
    assert "pkix.invalid_uri_syntax" in pkilint_cli_errors(certificate_to_pem(flagged))


def test_pre_issuance_lint_tolerates_wildcards_but_not_bad_names() -> None:
    """pkilint's RFC 5280 validator refuses any wildcard DNS name; our lint lets a valid one
    through (RFC 5280 leaves wildcards to RFC 6125), and only when every DNS name is valid."""
    root = root_ca(A.EC_P256)

    def leaf(*names: str) -> x509.Certificate:
        template = leaf_template(
            A.EC_P256, sans=[San(type=SanType.DNS, value=n) for n in ("*.example.com", "a.com")]
        )
        built = build_certificate(
            template,
            key(A.EC_P256, "leaf").public_key(),
            root.subject,
            key(A.EC_P256, "root"),
            key_identifier_of(root),
            new_serial(),
        )
        if not names:
            return built
        # the same certificate with raw SANs that our template would never have let through
        builder = x509.CertificateBuilder(
            issuer_name=built.issuer,
            subject_name=built.subject,
            public_key=built.public_key(),
            serial_number=built.serial_number,
            not_valid_before=built.not_valid_before_utc,
            not_valid_after=built.not_valid_after_utc,
            extensions=[e for e in built.extensions if e.oid != x509.SubjectAlternativeName.oid],
        ).add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        return builder.sign(key(A.EC_P256, "root"), hashes.SHA256())

    wildcard = leaf()
    assert "pkix.invalid_domain_name_syntax" in pkilint_errors(certificate_to_pem(wildcard))
    assert lint.lint_errors(wildcard) == []
    bad_names = (["*.example.com", "bad_name.example.com"], ["*.*.example.com"], ["a.*.com"])
    for bad in bad_names:
        assert "pkix.invalid_domain_name_syntax" in lint.lint_errors(leaf(*bad)), bad
