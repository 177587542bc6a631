"""From a certificate request and its profile to the template to sign: pure and shared.

The api resolves a template to answer 422 at once; the issuer resolves it again from the stored
parameters, authoritatively, at signing time (the profile or CA may have changed in between).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from certforge.common.crypto.certificates import check_template, usages_allowed_for, usages_of
from certforge.common.crypto.names import general_names_to_sans, name_to_subject
from certforge.common.db.tables import CertificateAuthority
from certforge.common.domain import (
    EnrollmentChannel,
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    RenewalKey,
    RequestMethod,
    SignatureHash,
    SubjectFields,
)
from certforge.common.durations import Duration
from certforge.common.errors import Unprocessable
from certforge.common.name_constraints import NameConstraints, chain_constraints
from certforge.common.names import common_name_form, invisible_character
from certforge.common.template import CertificateTemplate, San, check_san_count

MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-/]{1,64}$")]
MetadataValue = Annotated[str, StringConstraints(max_length=256)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=32)]
"""String tags on a certificate: at most 32, keys of `[A-Za-z0-9_.-/]`, values ≤ 256 chars."""


class ProfileDefaults(BaseModel):
    """What a request gets for each field it leaves out."""

    model_config = ConfigDict(extra="forbid")

    ttl: Duration = Field(default=timedelta(days=30), description="validity, e.g. 30d")
    subject: SubjectFields = SubjectFields()
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
    signature_algorithm: SignatureHash | None = Field(
        default=None, description="hash of the signature; none = the CA key's natural one"
    )
    key_usages: list[KeyUsage] = Field(default_factory=lambda: [KeyUsage.DIGITAL_SIGNATURE])
    extended_key_usages: list[ExtendedKeyUsage] = Field(
        default_factory=lambda: [ExtendedKeyUsage.SERVER_AUTH]
    )


class RequestParams(BaseModel):
    """A request as stored: what the caller asked for, before defaults (`None` = use default)."""

    model_config = ConfigDict(extra="ignore")

    method: RequestMethod
    subject: SubjectFields = SubjectFields()
    sans: list[San] = Field(default_factory=list)
    key_algorithm: KeyAlgorithm | None = None
    signature_algorithm: SignatureHash | None = None
    ttl: Duration | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    key_usages: list[KeyUsage] | None = None
    extended_key_usages: list[ExtendedKeyUsage] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    csr: str | None = None
    key: RenewalKey | None = Field(default=None, description="renewals: where the key comes from")
    same_key: bool = Field(default=False, description="renewals by CSR: require the old key")
    via: EnrollmentChannel = Field(
        default=EnrollmentChannel.API,
        description="the enrollment it came through; rows written before ACME have none: API",
    )


@dataclass(frozen=True)
class IssuingCA:
    """What resolution needs to know of the CA that will sign."""

    name: str
    key_algorithm: KeyAlgorithm
    not_after: datetime
    name_constraints: tuple[NameConstraints, ...] = ()
    """its own and those of every CA above it (`name_constraints.chain_constraints`)"""

    @classmethod
    def of(cls, ca: CertificateAuthority) -> IssuingCA:
        """From the CA's row (the api's plain-SQL hot path builds it from its joined record)."""
        return cls(
            ca.name,
            KeyAlgorithm(ca.key_algorithm),
            ca.not_after,
            chain_constraints(ca.name_constraints, ca.chain_name_constraints),
        )


def resolve_template(
    params: RequestParams, defaults: ProfileDefaults, ca: IssuingCA, now: datetime
) -> CertificateTemplate:
    """The template to sign, or `Unprocessable` naming the request field at fault.

    Usages taken from the profile's defaults are narrowed to what the key type can do (a
    profile serving RSA and EC keys may list key_encipherment); usages the caller asked for
    explicitly are kept and refused if they do not fit.
    """
    key_algorithm = params.key_algorithm or defaults.key_algorithm
    not_before, not_after = _window(params, defaults, now)
    if not_after > ca.not_after:
        raise Unprocessable.on_field(
            "not_after" if params.not_after else "ttl",
            f"the certificate would expire {not_after:%Y-%m-%d %H:%M}Z, after CA {ca.name!r} "
            f"does ({ca.not_after:%Y-%m-%d %H:%M}Z)",
        )
    if params.key_usages is not None:
        key_usages = params.key_usages
    else:
        allowed = usages_allowed_for(key_algorithm)
        key_usages = [u for u in defaults.key_usages if u in allowed]
    signature = params.signature_algorithm
    if signature is None and ca.key_algorithm is not KeyAlgorithm.ED25519:
        signature = defaults.signature_algorithm
    if signature is not None and ca.key_algorithm is KeyAlgorithm.ED25519:
        raise Unprocessable.on_field(
            "signature_algorithm", f"CA {ca.name!r} signs with Ed25519, which takes no hash"
        )
    by_csr = params.method is RequestMethod.CSR
    subject = params.subject if by_csr else params.subject.merged_over(defaults.subject)
    check_san_count(len(params.sans), "csr.sans" if by_csr else "sans")
    template = CertificateTemplate(
        subject=named_subject(subject, lambda name: f"csr.{name}" if by_csr else name),
        sans=params.sans,
        key_algorithm=key_algorithm,
        signature_hash=signature,
        key_usages=key_usages,
        extended_key_usages=(
            params.extended_key_usages
            if params.extended_key_usages is not None
            else defaults.extended_key_usages
        ),
        not_before=not_before,
        not_after=not_after,
    )
    check_template(template)
    return template


_MAX_COMMON_NAME = 64
"""RFC 5280's ub-common-name."""


def named_subject(subject: SubjectFields, field_of: Callable[[str], str]) -> SubjectFields:
    """`subject` as a certificate carries it: a common name that looks like a host name in the
    form of its DNS SAN (`names.common_name_form`: one name, one form), and no attribute with
    an invisible character. `Unprocessable` on `field_of(attribute)` otherwise, so the api
    (early) and the issuer (at signing) refuse the same subjects in the same words."""
    present = subject.present()
    for name, value in present.items():
        invisible = invisible_character(value)
        if invisible:
            raise Unprocessable.on_field(field_of(name), f"{invisible}; write the name without it")
    common_name = present.get("common_name")
    if common_name is None:
        return subject
    try:
        form = common_name_form(common_name)
    except ValueError as exc:
        raise Unprocessable.on_field(field_of("common_name"), str(exc)) from None
    if len(form) > _MAX_COMMON_NAME:
        raise Unprocessable.on_field(
            field_of("common_name"),
            f"{form!r}, the DNS form of {common_name!r}, is longer than the {_MAX_COMMON_NAME}"
            " characters a common name holds; leave the common name out and give it as a SAN",
        )
    return subject if form == common_name else subject.model_copy(update={"common_name": form})


def _window(
    params: RequestParams, defaults: ProfileDefaults, now: datetime
) -> tuple[datetime, datetime]:
    start = (params.not_before or now).replace(microsecond=0)
    if params.not_after is not None:
        end = params.not_after.replace(microsecond=0)
        if end <= start:
            raise Unprocessable.on_field("not_after", "must be later than not_before")
    else:
        end = start + (params.ttl or defaults.ttl)
    if end <= now:
        # An already expired certificate serves nobody (and would be due for renewal at once).
        field = "not_after" if params.not_after else "not_before" if params.not_before else "ttl"
        raise Unprocessable.on_field(
            field, f"the certificate would expire {end:%Y-%m-%d %H:%M}Z, in the past"
        )
    return start, end


def renew_at(not_before: datetime, not_after: datetime, renew_before_days: int) -> datetime:
    """When renewal is due: `renew_before_days` before expiry, but never in the first two
    thirds of the validity, so a short-lived certificate is not due the moment it is issued."""
    window = min(timedelta(days=renew_before_days), (not_after - not_before) / 3)
    return not_after - window


def fitted_renew_before_days(days: int, validity: timedelta) -> int:
    """`days` if a certificate valid for `validity` leaves room for it (1 to validity - 1 whole
    days, the range the api accepts), else the largest value that fits: a renewal shortened by
    the policy or by the CA's expiry keeps a renewal window it can honour."""
    return max(1, min(days, validity // timedelta(days=1) - 1))


def renewal_template(
    old: x509.Certificate,
    key_algorithm: KeyAlgorithm,
    max_validity: timedelta | None,
    ca: IssuingCA,
    now: datetime,
) -> CertificateTemplate:
    """The successor of `old`: same subject, SANs and usages; the original validity length,
    capped by the policy's maximum and by the CA's own expiry (a renewal shortens rather than
    fails when the CA expires first)."""
    try:
        san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = general_names_to_sans(san)
    except x509.ExtensionNotFound:
        sans = []
    key_usages, extended_key_usages = usages_of(old)
    validity = old.not_valid_after_utc - old.not_valid_before_utc
    if max_validity is not None:
        validity = min(validity, max_validity)
    start = now.replace(microsecond=0)
    end = start + validity
    if end > ca.not_after:
        # Shortened to the CA's expiry; refused only when that leaves almost nothing (a
        # certificate that was short-lived to begin with keeps its length).
        end = ca.not_after
        if end <= start + timedelta(minutes=1):
            raise Unprocessable.on_field("ca", f"CA {ca.name!r} expires too soon to renew under it")
    algorithm = old.signature_hash_algorithm
    hash_name = algorithm.name.upper() if algorithm is not None else ""
    signature = None
    if ca.key_algorithm is not KeyAlgorithm.ED25519 and hash_name in SignatureHash.__members__:
        signature = SignatureHash(hash_name)
    check_san_count(len(sans), "certificate_id")
    template = CertificateTemplate(
        subject=named_subject(name_to_subject(old.subject).subject, lambda _: "certificate_id"),
        sans=sans,
        key_algorithm=key_algorithm,
        signature_hash=signature,
        key_usages=[u for u in key_usages if u in usages_allowed_for(key_algorithm)],
        extended_key_usages=extended_key_usages,
        not_before=start,
        not_after=end,
    )
    check_template(template)
    return template
