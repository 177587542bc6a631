"""ACME enrollment settings of an attachment: the row's `acme_*` columns as the REST API shows
and sets them, and the directory URL an admin hands to ACME clients.

Kept apart from `applications` (which shows them on every attachment) and `acme_admin` (which
changes them) so that both can use it without importing each other.
"""

from __future__ import annotations

import re

from fastapi import Request

from certforge.api.domain.common import now
from certforge.api.schemas.acme import AcmeEnrollment, AcmeEnrollmentPublic
from certforge.common.acme import ChallengeType
from certforge.common.db.tables import ProfileAttachment

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def public_origin(request: Request) -> str:
    """`scheme://host[:port]` of the URL the caller used, as ACME URLs are built.

    Behind a TLS-terminating proxy the api sees plain http on its own address; the proxy's
    `X-Forwarded-Proto` and `X-Forwarded-Host` (first value, when well formed) say what the
    client used, so the directory URL shown here is the one that works from outside. uvicorn
    already applies a trusted proxy's `X-Forwarded-Proto` to the scheme; honouring the headers
    here as well covers the Host a proxy rewrote. The value is only shown to the caller who
    sent the headers, so a forged header misleads nobody else.
    """
    scheme = request.url.scheme
    host = request.url.netloc
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        scheme = proto
    forwarded_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if forwarded_host and _HOST.match(forwarded_host):
        host = forwarded_host
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{scheme}://{host}{root}"


def directory_url(origin: str, application: str, profile: str) -> str:
    return f"{origin}/acme/{application}/{profile}/directory"


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
