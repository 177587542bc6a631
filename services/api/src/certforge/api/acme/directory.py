"""Which ACME enrollment a directory URL names, and the directory document itself.

One directory is one attached profile of one application (`/acme/{application}/{profile}`),
so by design a directory offers one profile and `meta.profiles` is absent. Everything the
protocol needs of the enrollment (its settings, the profile's CA and policy) is read in one
round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from certforge.api.acme.errors import not_found, unauthorized
from certforge.api.acme.urls import AcmeUrls
from certforge.api.domain.common import is_reference
from certforge.common.db.pool import Database, Row
from certforge.common.domain import RequestKind
from certforge.common.errors import CertforgeError
from certforge.common.request_rules import Enrollment, check_enrollment

_TARGET_SQL = """
SELECT a.id AS app_id, a.slug AS app_slug,
       p.id AS profile_id, p.slug AS profile_slug, p.defaults, p.extensions,
       TRUE AS attached, ap.api_enabled, ap.api_auto_renew,
       ap.acme_enabled, ap.acme_eab_required, ap.acme_challenge_types,
       ap.acme_renew_before_days, ap.acme_terms_of_service, ap.acme_website,
       ca.name AS ca_name, ca.status AS ca_status, ca.key_algorithm AS ca_key_algorithm,
       ca.not_after AS ca_not_after, ca.name_constraints AS ca_name_constraints,
       ca.chain_name_constraints AS ca_chain_name_constraints,
       pol.name AS policy_name, pol.document AS policy_document
FROM applications a
JOIN application_profiles ap ON ap.application_id = a.id
JOIN profiles p ON p.id = ap.profile_id
JOIN certificate_authorities ca ON ca.id = p.ca_id
JOIN policies pol ON pol.id = p.policy_id
WHERE a.slug = $1 AND p.slug = $2
"""
"""The same columns as the REST API's request target (`domain.requests`), plus ACME's."""


@dataclass(frozen=True)
class AcmeTarget:
    """An application's attached profile with ACME enrollment on."""

    row: Row

    @property
    def app_id(self) -> UUID:
        return UUID(str(self.row["app_id"]))

    @property
    def app_slug(self) -> str:
        return str(self.row["app_slug"])

    @property
    def profile_id(self) -> UUID:
        return UUID(str(self.row["profile_id"]))

    @property
    def profile_slug(self) -> str:
        return str(self.row["profile_slug"])

    def check_issuable(self) -> None:
        """The rule the issuer applies when it signs (`request_rules.check_enrollment`: the
        attachment enrolls and its CA is active), checked before an order or a finalize is
        accepted, so a client is refused at once instead of seeing its order fail later."""
        enrollment = Enrollment(
            application=self.app_slug,
            profile=self.profile_slug,
            attached=True,
            api_enabled=bool(self.row["api_enabled"]),
            ca_name=str(self.row["ca_name"]),
            ca_status=str(self.row["ca_status"]),
        )
        try:
            check_enrollment(enrollment, RequestKind.ISSUE)
        except CertforgeError as exc:
            raise unauthorized(exc.detail.removeprefix("profile: ")) from None

    @property
    def eab_required(self) -> bool:
        return bool(self.row["acme_eab_required"])

    @property
    def challenge_types(self) -> list[str]:
        return list(self.row["acme_challenge_types"] or [])

    @property
    def renew_before_days(self) -> int:
        return int(self.row["acme_renew_before_days"])

    @property
    def terms_of_service(self) -> str | None:
        value = self.row["acme_terms_of_service"]
        return str(value) if value else None


async def target(db: Database, application: str, profile: str) -> AcmeTarget:
    """The enrollment, or a 404 problem when the application, the profile, the attachment or
    ACME enrollment is missing (one answer for all: a directory exists or it does not)."""
    row = None
    if is_reference(application) and is_reference(profile):
        row = await db.fetchrow(_TARGET_SQL, application, profile)
    if row is None or not row["acme_enabled"]:
        raise not_found(f"no ACME directory for profile {profile!r} of application {application!r}")
    return AcmeTarget(row)


def document(urls: AcmeUrls, target: AcmeTarget) -> dict[str, Any]:
    """The directory object (RFC 8555 §7.1.1, RFC 9773 §3)."""
    meta: dict[str, Any] = {"externalAccountRequired": target.eab_required}
    if target.terms_of_service:
        meta["termsOfService"] = target.terms_of_service
    if target.row["acme_website"]:
        meta["website"] = target.row["acme_website"]
    return {
        "newNonce": urls.new_nonce,
        "newAccount": urls.new_account,
        "newOrder": urls.new_order,
        "revokeCert": urls.revoke_cert,
        "keyChange": urls.key_change,
        "renewalInfo": urls.renewal_info,
        "meta": meta,
    }
