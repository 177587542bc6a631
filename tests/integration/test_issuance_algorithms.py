"""Issue 3, "Done when": every key algorithm and both methods, through real NATS + PostgreSQL,
under root → issuing CA chains keyed EC, RSA and Ed25519. Every certificate verifies with
`openssl verify -CAfile root -untrusted chain` and pkilint finds no error (`check_issued`);
the content is what was asked for, with the profile's defaults for what was not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from admin_kit import ok, problem
from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import generate_private_key, key_algorithm_of
from certforge.common.domain import KeyAlgorithm, SignatureHash, SubjectFields
from certforge.common.template import San
from issuance_kit import (
    WAIT,
    Enrollment,
    check_issued,
    eku_names,
    enroll,
    issue,
    pem_blocks,
    sans_of,
    spki,
)
from pki_tools import openssl_verify, pkilint_errors

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ALL_ALGORITHMS = [a.value for a in KeyAlgorithm]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ec_chain(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin, policy={"key_algorithms": ALL_ALGORITHMS})


def _host(name: str) -> str:
    return f"{name.lower().replace('_', '-')}.example.com"


def _window(cert: x509.Certificate) -> timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


async def _certificate(admin: httpx.AsyncClient, e: Enrollment, cert_id: str) -> dict[str, Any]:
    result: dict[str, Any] = ok(await admin.get(f"{e.certificates}/{cert_id}"))
    return result


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
async def test_managed_key_every_algorithm(
    admin: httpx.AsyncClient, ec_chain: Enrollment, algorithm: str
) -> None:
    host = _host(algorithm)
    body = await issue(
        admin,
        ec_chain,
        method="managed",
        common_name=host,
        sans=[{"type": "dns", "value": host}, {"type": "ip", "value": "10.1.2.3"}],
        key_algorithm=algorithm,
        ttl="7d",
        metadata={"team": "payments", "algorithm": algorithm},
    )
    issued = body["certificate"]
    cert = check_issued(issued, ec_chain)

    assert cert.subject.rfc4514_string() == f"CN={host}"
    assert sans_of(cert) == [("dns", host), ("ip", "10.1.2.3")]
    assert key_algorithm_of(cert.public_key()) is KeyAlgorithm(algorithm)
    assert _window(cert) == timedelta(days=7)
    # The managed key: PKCS#8 PEM, and the very key of the certificate.
    assert issued["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(issued["private_key"].encode(), password=None)
    assert spki(key.public_key()) == spki(cert.public_key())
    # An EC P-256 issuing CA signs with its natural hash.
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)

    details = await _certificate(admin, ec_chain, issued["id"])
    assert details["key_algorithm"] == algorithm
    assert details["metadata"] == {"team": "payments", "algorithm": algorithm}
    assert details["method"] == "managed"
    assert details["has_private_key"] is True
    assert details["signature_algorithm"] == "SHA256"
    assert details["request_id"] == body["id"]


def _client_key(algorithm: KeyAlgorithm) -> Any:
    return generate_private_key(algorithm)


@pytest.mark.parametrize(
    "algorithm",
    [KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_2048, KeyAlgorithm.ED25519],
    ids=lambda a: a.value,
)
async def test_csr_every_key_family(
    admin: httpx.AsyncClient, ec_chain: Enrollment, algorithm: KeyAlgorithm
) -> None:
    host = _host(f"csr-{algorithm.value}")
    key = _client_key(algorithm)
    csr = build_csr(
        key,
        SubjectFields(common_name=host),
        [San(type="dns", value=host), San(type="ip", value="10.9.8.7")],
    )
    body = await issue(
        admin, ec_chain, method="csr", csr=csr_to_pem(csr), ttl="36h", metadata={"k": "v"}
    )
    issued = body["certificate"]
    assert issued.get("private_key") is None, "the caller holds the key: none to return"
    cert = check_issued(issued, ec_chain)

    assert spki(cert.public_key()) == spki(key.public_key()), "the CSR's key, certified"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == host
    assert sans_of(cert) == [("dns", host), ("ip", "10.9.8.7")]
    assert _window(cert) == timedelta(hours=36)
    details = await _certificate(admin, ec_chain, issued["id"])
    assert details["method"] == "csr"
    assert details["has_private_key"] is False
    assert details["key_algorithm"] == algorithm.value
    assert details["metadata"] == {"k": "v"}


async def test_profile_defaults_fill_unset_fields(admin: httpx.AsyncClient) -> None:
    """A request naming only its identity gets the profile's TTL, subject, key type, usages."""
    e = await enroll(
        admin,
        defaults={
            "ttl": "12h",
            "subject": {"organization": "Example Corp", "country": "US"},
            "key_algorithm": "EC_P384",
            "key_usages": ["digital_signature", "key_encipherment"],
            "extended_key_usages": ["server_auth", "client_auth"],
        },
    )
    body = await issue(
        admin, e, common_name="api.example.com", sans=[{"type": "dns", "value": "api.example.com"}]
    )
    cert = check_issued(body["certificate"], e)
    assert cert.subject.rfc4514_string() == "CN=api.example.com,O=Example Corp,C=US"
    assert key_algorithm_of(cert.public_key()) is KeyAlgorithm.EC_P384
    assert _window(cert) == timedelta(hours=12)
    assert eku_names(cert) == {"serverAuth", "clientAuth"}
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    # key_encipherment is an RSA usage: narrowed away for the EC default key.
    assert usage.digital_signature
    assert not usage.key_encipherment

    # What the request does set wins; the rest still comes from the profile.
    body = await issue(
        admin,
        e,
        common_name="rsa.example.com",
        organization="Payments",
        key_algorithm="RSA_2048",
        extended_key_usages=["client_auth"],
        sans=[{"type": "dns", "value": "rsa.example.com"}],
    )
    cert = check_issued(body["certificate"], e)
    assert cert.subject.rfc4514_string() == "CN=rsa.example.com,O=Payments,C=US"
    assert key_algorithm_of(cert.public_key()) is KeyAlgorithm.RSA_2048
    assert eku_names(cert) == {"clientAuth"}
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.key_encipherment


async def test_san_only_certificate_has_critical_san(
    admin: httpx.AsyncClient, ec_chain: Enrollment
) -> None:
    """No subject at all: the SAN carries the identity and is critical (RFC 5280 4.2.1.6);
    every SAN type the API offers is encoded."""
    sans = [
        {"type": "dns", "value": "only-sans.example.com"},
        {"type": "ip", "value": "10.0.0.7"},
        {"type": "email", "value": "ops@example.com"},
        {"type": "uri", "value": "https://example.com/services/web"},
    ]
    body = await issue(admin, ec_chain, sans=sans, key_algorithm="EC_P256")
    cert = check_issued(body["certificate"], ec_chain)
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert sans_of(cert) == [(s["type"], s["value"]) for s in sans]
    details = await _certificate(admin, ec_chain, body["certificate"]["id"])
    assert details["common_name"] is None
    assert details["subject"] == ""
    assert details["sans"] == sans


async def test_names_are_normalized(admin: httpx.AsyncClient, ec_chain: Enrollment) -> None:
    """Upper case, a trailing dot and an IDN become the lower-case A-label form; duplicates go."""
    body = await issue(
        admin,
        ec_chain,
        sans=[
            {"type": "dns", "value": "Bücher.Example.COM."},
            {"type": "dns", "value": "xn--bcher-kva.example.com"},
            {"type": "email", "value": "Ops@Bücher.example.com"},
            {"type": "ip", "value": "::ffff:10.0.0.1"},
        ],
    )
    cert = check_issued(body["certificate"], ec_chain)
    assert sans_of(cert) == [
        ("dns", "xn--bcher-kva.example.com"),
        ("email", "Ops@xn--bcher-kva.example.com"),
        ("ip", "::ffff:a00:1"),
    ]


async def test_spiffe_uri_only_trips_pkilints_known_false_positive(
    admin: httpx.AsyncClient, ec_chain: Enrollment
) -> None:
    """pkilint's URI check knows only web schemes; RFC 5280 allows any RFC 3986 URI, so the
    issuer's pre-issuance lint tolerates exactly that finding (see issuer/lint.py)."""
    uri = "spiffe://example.com/ns/prod/sa/web"
    body = await issue(admin, ec_chain, sans=[{"type": "uri", "value": uri}])
    leaf = body["certificate"]["certificate"]
    openssl_verify(ec_chain.root["certificate"], pem_blocks(body["certificate"]["chain"]), leaf)
    findings = pkilint_errors(leaf)
    assert "pkix.invalid_uri_syntax" in findings
    assert findings.count("(ERROR)") + findings.count("(FATAL)") == 1, findings


async def test_explicit_validity_window(admin: httpx.AsyncClient, ec_chain: Enrollment) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    end = start + timedelta(days=3)
    body = await issue(
        admin,
        ec_chain,
        common_name="window.example.com",
        not_before=start.isoformat(),
        not_after=end.isoformat(),
    )
    cert = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)
    # Not yet valid: verify it at its own start.
    openssl_verify(
        ec_chain.root["certificate"],
        pem_blocks(body["certificate"]["chain"]),
        body["certificate"]["certificate"],
        at=start + timedelta(minutes=1),
    )


async def test_rsa_chain(admin: httpx.AsyncClient) -> None:
    """RSA root and issuing CA: EC and RSA leaves, the CA's default hash or the one asked for."""
    e = await enroll(admin, ca_key="RSA_2048", policy={"key_algorithms": ALL_ALGORITHMS})
    body = await issue(admin, e, common_name="ec.example.com", key_algorithm="EC_P256")
    cert = check_issued(body["certificate"], e)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)

    body = await issue(
        admin,
        e,
        common_name="rsa.example.com",
        key_algorithm="RSA_2048",
        signature_algorithm="SHA384",
    )
    cert = check_issued(body["certificate"], e)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 2048
    details = await _certificate(admin, e, body["certificate"]["id"])
    assert details["signature_algorithm"] == SignatureHash.SHA384.value

    key = generate_private_key(KeyAlgorithm.RSA_2048)
    csr = build_csr(key, SubjectFields(common_name="csr.example.com"))
    body = await issue(admin, e, method="csr", csr=csr_to_pem(csr))
    cert = check_issued(body["certificate"], e)
    assert spki(cert.public_key()) == spki(key.public_key())


async def test_ed25519_chain(admin: httpx.AsyncClient) -> None:
    """Ed25519 CAs sign without a hash: signature_algorithm is absent, asking for one is 422,
    and a profile default hash is not applied to them."""
    e = await enroll(
        admin,
        ca_key="ED25519",
        policy={"key_algorithms": ALL_ALGORITHMS},
        defaults={"signature_algorithm": "SHA384"},
    )
    for algorithm in ("EC_P256", "ED25519"):
        body = await issue(admin, e, common_name=_host(f"ed-{algorithm}"), key_algorithm=algorithm)
        cert = check_issued(body["certificate"], e)
        assert cert.signature_hash_algorithm is None
        assert isinstance(
            x509.load_pem_x509_certificate(e.issuing["certificate"].encode()).public_key(),
            ed25519.Ed25519PublicKey,
        )
        details = await _certificate(admin, e, body["certificate"]["id"])
        assert details["signature_algorithm"] is None

    key = generate_private_key(KeyAlgorithm.EC_P256)
    csr = build_csr(key, SubjectFields(common_name="csr.example.com"))
    body = await issue(admin, e, method="csr", csr=csr_to_pem(csr))
    check_issued(body["certificate"], e)

    r = await admin.post(
        e.requests,
        headers=WAIT,
        json=e.body(common_name="x.example.com", signature_algorithm="SHA256"),
    )
    problem(r, 422, "signature_algorithm")
