"""Whether a certificate request may be signed now, shared by the api (an early 4xx) and the
issuer (the authority, at signing time: the profile, CA or certificate may have changed in
between). Each rule is one function here with one wording per refusal, so a caller reads the
same reason whichever service refused. Pure: the clock is a parameter.

The field a refusal names is the one the caller gave: `profile` for a new certificate,
`certificate_id` for a renewal (a renewal names a certificate, never a profile).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from certforge.common.crypto.certificates import load_certificate_pem, same_public_key
from certforge.common.crypto.csr import parse_csr
from certforge.common.crypto.keys import PublicKey
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateAuthority,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import (
    CAStatus,
    CertificateStatus,
    EnrollmentChannel,
    KeyAlgorithm,
    RenewalKey,
    RequestKind,
)
from certforge.common.errors import Conflict, Unprocessable
from certforge.common.issuance import IssuingCA, renewal_template
from certforge.common.name_constraint_rules import enforce_policy_and_names
from certforge.common.policy import PolicyDocument
from certforge.common.profile_extensions import (
    DEFAULT_EXTENSIONS,
    ProfileExtensions,
    check_csr_extensions,
)
from certforge.common.template import CertificateTemplate

_TARGET_FIELD = {RequestKind.ISSUE: "profile", RequestKind.RENEW: "certificate_id"}


@dataclass(frozen=True)
class Enrollment:
    """A profile as one application enrolls through it, with the status of its CA."""

    application: str
    profile: str
    attached: bool
    api_enabled: bool
    ca_name: str
    ca_status: str
    acme_enabled: bool = False

    @classmethod
    def of(
        cls,
        application: Application,
        profile: Profile,
        attachment: ProfileAttachment | None,
        ca: CertificateAuthority,
    ) -> Enrollment:
        """From the rows (the api's plain-SQL hot path builds it from its joined record)."""
        return cls(
            application=application.slug,
            profile=profile.slug,
            attached=attachment is not None,
            api_enabled=attachment is not None and attachment.api_enabled,
            ca_name=ca.name,
            ca_status=ca.status,
            acme_enabled=attachment is not None and attachment.acme_enabled,
        )

    def enabled(self, via: EnrollmentChannel) -> bool:
        return self.acme_enabled if via is EnrollmentChannel.ACME else self.api_enabled


_CHANNEL_NAME = {EnrollmentChannel.API: "API", EnrollmentChannel.ACME: "ACME"}


def check_enrollment(
    enrollment: Enrollment, kind: RequestKind, via: EnrollmentChannel = EnrollmentChannel.API
) -> None:
    """Refuse unless the profile is attached to the application with the enrollment the
    request came through (`via`) on and its CA is active: a detached profile, an enrollment
    switched off or a disabled CA stops new certificates and renewals. The two enrollments are
    independent: a profile may be offered to ACME clients only."""
    field = _TARGET_FIELD[kind]
    profile, app = enrollment.profile, enrollment.application
    if not enrollment.attached:
        raise Unprocessable.on_field(
            field, f"profile {profile!r} is not attached to application {app!r}"
        )
    if not enrollment.enabled(via):
        raise Unprocessable.on_field(
            field,
            f"{_CHANNEL_NAME[via]} enrollment is disabled for profile {profile!r} in {app!r}",
        )
    if enrollment.ca_status != CAStatus.ACTIVE:
        raise Unprocessable.on_field(
            field, f"CA {enrollment.ca_name!r} of profile {profile!r} is disabled"
        )


@dataclass(frozen=True)
class RenewedCertificate:
    """What the renewal rules read of the certificate being renewed."""

    status: str
    renewed_by_id: UUID | None
    renewing_request_id: UUID | None
    managed_key: bool
    key_algorithm: KeyAlgorithm
    certificate_pem: str

    @classmethod
    def of(cls, certificate: Certificate) -> RenewedCertificate:
        return cls(
            status=certificate.status,
            renewed_by_id=certificate.renewed_by_id,
            renewing_request_id=certificate.renewing_request_id,
            managed_key=certificate.encrypted_private_key is not None,
            key_algorithm=KeyAlgorithm(certificate.key_algorithm),
            certificate_pem=certificate.certificate_pem,
        )


def check_active(status: str, renewed_by_id: UUID | None) -> None:
    """Refuse unless the certificate is active: what a renewal, or a request to renew early,
    needs first, with one wording per refusal."""
    if status == CertificateStatus.REVOKED:
        raise Conflict.on_field("certificate_id", "a revoked certificate is not renewed")
    if status == CertificateStatus.RENEWED:
        raise Conflict.on_field("certificate_id", f"already renewed by certificate {renewed_by_id}")
    if status == CertificateStatus.EXPIRED:
        raise Unprocessable.on_field("certificate_id", "expired; request a new certificate")
    if status != CertificateStatus.ACTIVE:
        raise Unprocessable.on_field(
            "certificate_id", f"the certificate is {status}; only active ones renew"
        )


def check_renewable(
    old: RenewedCertificate, key: RenewalKey, renewal_request_id: UUID | None
) -> None:
    """Refuse unless `old` is active, no other renewal is in flight, and `key` can be honoured.

    `renewal_request_id` is the renewal being signed (the issuer), or `None` when none exists
    yet (the api): a certificate's own claim on that request is not "another renewal"."""
    check_active(old.status, old.renewed_by_id)
    if old.renewing_request_id not in (None, renewal_request_id):
        raise Conflict.on_field(
            "certificate_id", f"a renewal is in progress (request {old.renewing_request_id})"
        )
    if not old.managed_key and key is not RenewalKey.CSR:
        raise Unprocessable.on_field(
            "key", "a certificate issued from a CSR renews only with a new CSR (key: csr)"
        )


@dataclass(frozen=True)
class RenewalPlan:
    template: CertificateTemplate
    csr_key: PublicKey | None
    """The CSR's public key when the renewal brings one (`key: csr`)."""


@dataclass(frozen=True)
class RenewalAsked:
    """How the caller asked for the successor's key (`RenewBody` or the stored parameters)."""

    key: RenewalKey
    csr: str | None = None
    same_key: bool = False


def plan_renewal(
    old: RenewedCertificate,
    asked: RenewalAsked,
    renewal_request_id: UUID | None,
    enrollment: Enrollment,
    policy: PolicyDocument,
    policy_name: str,
    ca: IssuingCA,
    now: datetime,
    extensions: ProfileExtensions = DEFAULT_EXTENSIONS,
) -> RenewalPlan:
    """Every check of a renewal, in order, and the successor's template: the certificate is
    renewable, its profile still enrolls, a CSR (if any) verifies and holds the old key when
    asked to, and the successor fits the policy. Reusing a managed key is left to the issuer,
    the only holder of the key ring."""
    check_renewable(old, asked.key, renewal_request_id)
    check_enrollment(enrollment, RequestKind.RENEW)
    old_cert = load_certificate_pem(old.certificate_pem)
    key_algorithm = old.key_algorithm
    csr_key: PublicKey | None = None
    if asked.key is RenewalKey.CSR:
        csr = parse_csr(asked.csr or "")
        check_csr_extensions(csr.critical_extension_oids, extensions, enrollment.profile)
        csr_key, key_algorithm = csr.public_key, csr.key_algorithm
        if asked.same_key and not same_public_key(csr_key, old_cert.public_key()):
            raise Unprocessable.on_field("csr", "the CSR's key is not the certificate's key")
    template = renewal_template(old_cert, key_algorithm, policy.max_validity, ca, now)
    enforce_policy_and_names(policy, template, policy_name, ca.name, ca.name_constraints)
    return RenewalPlan(template=template, csr_key=csr_key)
