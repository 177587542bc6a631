"""The request rules both the api and the issuer apply: enrollment, renewability and the whole
renewal plan. Pure: no database, a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from cryptography import x509

from certforge.common.crypto.certificates import (
    build_certificate,
    certificate_to_pem,
    key_identifier,
    new_serial,
)
from certforge.common.crypto.csr import build_csr, csr_to_pem
from certforge.common.crypto.keys import PrivateKey, generate_private_key
from certforge.common.domain import (
    CertificateStatus,
    EnrollmentChannel,
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    RenewalKey,
    RequestKind,
    SanType,
    SubjectFields,
)
from certforge.common.errors import CertforgeError, Conflict, PolicyViolation, Unprocessable
from certforge.common.issuance import IssuingCA
from certforge.common.policy import PolicyDocument
from certforge.common.request_rules import (
    Enrollment,
    RenewalAsked,
    RenewedCertificate,
    check_enrollment,
    check_renewable,
    plan_renewal,
)
from certforge.common.template import CertificateTemplate, San

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOST = "svc.example.com"
CA = IssuingCA("Test CA", KeyAlgorithm.EC_P256, NOW + timedelta(days=365))
ENROLLED = Enrollment(
    application="shop",
    profile="web",
    attached=True,
    api_enabled=True,
    ca_name="Test CA",
    ca_status="active",
)
IN_FLIGHT = UUID(int=7)


def _leaf_pem(leaf_key: PrivateKey) -> str:
    ca_key = generate_private_key(KeyAlgorithm.EC_P256)
    template = CertificateTemplate(
        subject=SubjectFields(common_name=HOST),
        sans=[San(type=SanType.DNS, value=HOST)],
        key_algorithm=KeyAlgorithm.EC_P256,
        key_usages=[KeyUsage.DIGITAL_SIGNATURE],
        extended_key_usages=[ExtendedKeyUsage.SERVER_AUTH],
        not_before=NOW - timedelta(days=20),
        not_after=NOW + timedelta(days=10),
    )
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test CA")])
    cert = build_certificate(
        template,
        leaf_key.public_key(),
        name,
        ca_key,
        key_identifier(ca_key.public_key()),
        new_serial(),
    )
    return certificate_to_pem(cert)


LEAF_KEY = generate_private_key(KeyAlgorithm.EC_P256)
ACTIVE = RenewedCertificate(
    status=CertificateStatus.ACTIVE.value,
    renewed_by_id=None,
    renewing_request_id=None,
    managed_key=True,
    key_algorithm=KeyAlgorithm.EC_P256,
    certificate_pem=_leaf_pem(LEAF_KEY),
)


def _csr(key: PrivateKey) -> str:
    return csr_to_pem(
        build_csr(key, SubjectFields(common_name=HOST), [San(type=SanType.DNS, value=HOST)])
    )


@pytest.mark.parametrize(
    ("enrollment", "kind", "field", "words"),
    [
        pytest.param(ENROLLED, RequestKind.ISSUE, None, None, id="ok/enrolled"),
        pytest.param(
            replace(ENROLLED, attached=False, api_enabled=False),
            RequestKind.ISSUE,
            "profile",
            "profile 'web' is not attached to application 'shop'",
            id="fail/not-attached-names-the-profile",
        ),
        pytest.param(
            replace(ENROLLED, api_enabled=False),
            RequestKind.ISSUE,
            "profile",
            "API enrollment is disabled for profile 'web' in 'shop'",
            id="fail/api-enrollment-off",
        ),
        pytest.param(
            replace(ENROLLED, ca_status="disabled"),
            RequestKind.RENEW,
            "certificate_id",
            "CA 'Test CA' of profile 'web' is disabled",
            id="fail/ca-disabled-names-the-certificate-of-a-renewal",
        ),
    ],
)
def test_check_enrollment(
    enrollment: Enrollment, kind: RequestKind, field: str | None, words: str | None
) -> None:
    if field is None:
        check_enrollment(enrollment, kind)
        return
    with pytest.raises(Unprocessable) as raised:
        check_enrollment(enrollment, kind)
    assert [(e.field, e.message) for e in raised.value.errors] == [(field, words)]


@pytest.mark.parametrize(
    ("old", "key", "request_id", "error", "field", "words"),
    [
        pytest.param(ACTIVE, RenewalKey.NEW, None, None, None, None, id="ok/active"),
        pytest.param(
            replace(ACTIVE, renewing_request_id=IN_FLIGHT),
            RenewalKey.NEW,
            IN_FLIGHT,
            None,
            None,
            None,
            id="ok/its-own-claim-at-the-issuer",
        ),
        pytest.param(
            replace(ACTIVE, managed_key=False),
            RenewalKey.CSR,
            None,
            None,
            None,
            None,
            id="ok/csr-certificate-with-a-csr",
        ),
        pytest.param(
            replace(ACTIVE, status="revoked"),
            RenewalKey.NEW,
            None,
            Conflict,
            "certificate_id",
            "a revoked certificate is not renewed",
            id="fail/revoked",
        ),
        pytest.param(
            replace(ACTIVE, status="renewed", renewed_by_id=UUID(int=9)),
            RenewalKey.NEW,
            None,
            Conflict,
            "certificate_id",
            f"already renewed by certificate {UUID(int=9)}",
            id="fail/renewed",
        ),
        pytest.param(
            replace(ACTIVE, status="expired"),
            RenewalKey.NEW,
            None,
            Unprocessable,
            "certificate_id",
            "expired; request a new certificate",
            id="fail/expired",
        ),
        pytest.param(
            replace(ACTIVE, renewing_request_id=IN_FLIGHT),
            RenewalKey.NEW,
            None,
            Conflict,
            "certificate_id",
            f"a renewal is in progress (request {IN_FLIGHT})",
            id="fail/another-renewal-in-flight",
        ),
        pytest.param(
            replace(ACTIVE, managed_key=False),
            RenewalKey.REUSE,
            None,
            Unprocessable,
            "key",
            "a certificate issued from a CSR renews only with a new CSR (key: csr)",
            id="fail/csr-certificate-without-a-csr",
        ),
    ],
)
def test_check_renewable(
    old: RenewedCertificate,
    key: RenewalKey,
    request_id: UUID | None,
    error: type[CertforgeError] | None,
    field: str | None,
    words: str | None,
) -> None:
    if error is None:
        check_renewable(old, key, request_id)
        return
    with pytest.raises(error) as raised:
        check_renewable(old, key, request_id)
    assert [(e.field, e.message) for e in raised.value.errors] == [(field, words)]


def _plan(asked: RenewalAsked, policy: PolicyDocument | None = None) -> CertificateTemplate:
    plan = plan_renewal(
        ACTIVE, asked, None, ENROLLED, policy or PolicyDocument(), "web-policy", CA, NOW
    )
    if asked.key is RenewalKey.CSR:
        assert plan.csr_key is not None
    else:
        assert plan.csr_key is None
    return plan.template


def test_renewal_plan_keeps_the_name_and_length() -> None:
    template = _plan(RenewalAsked(key=RenewalKey.NEW))
    assert template.subject.common_name == HOST
    assert template.not_before == NOW
    assert template.not_after - template.not_before == timedelta(days=30)


def test_renewal_by_csr_takes_the_csr_key_and_algorithm() -> None:
    key = generate_private_key(KeyAlgorithm.EC_P384)
    template = _plan(RenewalAsked(key=RenewalKey.CSR, csr=_csr(key)))
    assert template.key_algorithm is KeyAlgorithm.EC_P384


@pytest.mark.parametrize(
    ("csr_key", "ok"),
    [
        pytest.param(LEAF_KEY, True, id="ok/same-key"),
        pytest.param(generate_private_key(KeyAlgorithm.EC_P256), False, id="fail/other-key"),
    ],
)
def test_renewal_by_csr_with_same_key(csr_key: PrivateKey, ok: bool) -> None:
    asked = RenewalAsked(key=RenewalKey.CSR, csr=_csr(csr_key), same_key=True)
    if ok:
        _plan(asked)
        return
    with pytest.raises(Unprocessable) as raised:
        _plan(asked)
    assert [e.field for e in raised.value.errors] == ["csr"]


def test_renewal_plan_checks_renewability_before_enrollment() -> None:
    """A revoked certificate under a disabled CA is refused as revoked (what the caller can
    act on), by the api and the issuer alike."""
    with pytest.raises(Conflict):
        plan_renewal(
            replace(ACTIVE, status="revoked"),
            RenewalAsked(key=RenewalKey.NEW),
            None,
            replace(ENROLLED, ca_status="disabled"),
            PolicyDocument(),
            "web-policy",
            CA,
            NOW,
        )


def test_renewal_plan_enforces_the_policy() -> None:
    policy = PolicyDocument.model_validate({"sans": {"dns": {"allowed": ["*.example.org"]}}})
    with pytest.raises(PolicyViolation):
        _plan(RenewalAsked(key=RenewalKey.NEW), policy)


def test_a_request_id_is_never_mistaken_for_a_claim() -> None:
    """The api passes no request id: any claim on the certificate is another renewal."""
    with pytest.raises(Conflict):
        check_renewable(replace(ACTIVE, renewing_request_id=uuid4()), RenewalKey.NEW, None)


@pytest.mark.parametrize(
    ("api", "acme", "via", "words"),
    [
        pytest.param(False, True, EnrollmentChannel.ACME, None, id="ok/acme-only"),
        pytest.param(True, False, EnrollmentChannel.API, None, id="ok/api-only"),
        pytest.param(
            True,
            False,
            EnrollmentChannel.ACME,
            "ACME enrollment is disabled for profile 'web' in 'shop'",
            id="fail/acme-off-while-api-on",
        ),
        pytest.param(
            False,
            True,
            EnrollmentChannel.API,
            "API enrollment is disabled for profile 'web' in 'shop'",
            id="fail/api-off-while-acme-on",
        ),
    ],
)
def test_each_channel_checks_its_own_enrollment(
    api: bool, acme: bool, via: EnrollmentChannel, words: str | None
) -> None:
    enrollment = replace(ENROLLED, api_enabled=api, acme_enabled=acme)
    if words is None:
        check_enrollment(enrollment, RequestKind.ISSUE, via)
        return
    with pytest.raises(Unprocessable) as raised:
        check_enrollment(enrollment, RequestKind.ISSUE, via)
    assert [(e.field, e.message) for e in raised.value.errors] == [("profile", words)]
