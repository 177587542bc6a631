"""ACME enrollment settings of an attachment: the row's `acme_*` columns as the REST API shows
and sets them, and the directory URL an admin hands to ACME clients.

Kept apart from `applications` (which shows them on every attachment) and `acme_admin` (which
changes them) so that both can use it without importing each other.
"""

from __future__ import annotations

from fastapi import Request

from certforge.api.acme.urls import PREFIX, request_base
from certforge.api.domain.common import now
from certforge.api.schemas.acme import AcmeEnrollment, AcmeEnrollmentPublic
from certforge.common.acme import ChallengeType
from certforge.common.db.tables import ProfileAttachment


def public_origin(request: Request) -> str:
    """`scheme://host[:port]` of the URL the caller used, exactly as the ACME endpoints build
    their URLs (`acme.urls.request_base`: the `acme_base_url` setting when pinned, else the
    request's, with a proxy's well-formed forwarded headers), so the directory URL shown to an
    admin is the one ACME clients are then answered with."""
    return request_base(request, request.app.state.certforge.settings.acme_base_url)


def directory_url(origin: str, application: str, profile: str) -> str:
    return f"{origin}{PREFIX}/{application}/{profile}/directory"


def settings_of(attachment: ProfileAttachment) -> AcmeEnrollment:
    return AcmeEnrollment(
        enabled=attachment.acme_enabled,
        eab_required=attachment.acme_eab_required,
        challenge_types=[ChallengeType(t) for t in attachment.acme_challenge_types],
        renew_before_days=attachment.acme_renew_before_days,
        terms_of_service=attachment.acme_terms_of_service,
        website=attachment.acme_website,
    )


def public(
    attachment: ProfileAttachment, application: str, profile: str, origin: str
) -> AcmeEnrollmentPublic:
    return AcmeEnrollmentPublic(
        **settings_of(attachment).model_dump(),
        directory_url=directory_url(origin, application, profile),
    )


def apply(attachment: ProfileAttachment, settings: AcmeEnrollment) -> None:
    attachment.acme_enabled = settings.enabled
    attachment.acme_eab_required = settings.eab_required
    attachment.acme_challenge_types = [t.value for t in settings.challenge_types]
    attachment.acme_renew_before_days = settings.renew_before_days
    attachment.acme_terms_of_service = settings.terms_of_service
    attachment.acme_website = settings.website
    attachment.updated_at = now()
