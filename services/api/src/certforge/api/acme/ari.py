"""ACME Renewal Information (RFC 9773 §4): when a client should renew a certificate.

The window comes from `common.acme.suggested_window`: the enrollment's
`acme_renew_before_days`, moved to "now" once an admin asked for early renewal of the
certificate, or of its CA for everything issued before that moment. Unauthenticated GET, as
the RFC has it; a certificate is found only in the directory's own application.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import malformed, not_found
from certforge.api.context import ApiContext
from certforge.common.acme import AriCertId, suggested_window

RETRY_AFTER_SECONDS = 6 * 3600

_CERT_SQL = """
SELECT c.not_before, c.not_after, c.created_at, c.early_renewal_requested_at,
       ca.early_renewal_requested_at AS ca_early_renewal_requested_at
FROM certificates c JOIN certificate_authorities ca ON ca.id = c.ca_id
WHERE c.application_id = $1 AND c.serial_number = $2 AND ca.subject_key_id = $3
"""


def early_renewal_at(
    certificate_at: datetime | None, ca_at: datetime | None, issued_at: datetime
) -> datetime | None:
    """The certificate's own request, or the CA's when the certificate predates it."""
    candidates = [certificate_at] if certificate_at is not None else []
    if ca_at is not None and issued_at < ca_at:
        candidates.append(ca_at)
    return min(candidates) if candidates else None


async def renewal_info(context: ApiContext, target: AcmeTarget, cert_id: str) -> dict[str, Any]:
    try:
        parsed = AriCertId.parse(cert_id)
    except (ValueError, IndexError):
        raise malformed("not an ARI certificate identifier (keyIdentifier.serial)") from None
    row = await context.db.fetchrow(
        _CERT_SQL, target.app_id, format(parsed.serial_number, "x"), parsed.key_identifier.hex()
    )
    if row is None:
        raise not_found("no certificate of this application has that identifier")
    start, end = suggested_window(
        not_before=row["not_before"],
        not_after=row["not_after"],
        renew_before_days=target.renew_before_days,
        early_renewal_at=early_renewal_at(
            row["early_renewal_requested_at"],
            row["ca_early_renewal_requested_at"],
            row["created_at"],
        ),
    )
    return {"suggestedWindow": {"start": _time(start), "end": _time(end)}}


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
