"""The one way a certificate request row is made, whoever makes it.

The api writes new requests with plain SQL (its hot path), manual renewals through the ORM,
and the renewer in bulk; all three start from this row, so a request looks the same in the
table whichever way it came. Pure: the id and the clock are parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from certforge.common.domain import RequestKind, RequestStatus
from certforge.common.issuance import RequestParams


def new_request_row(
    *,
    id: UUID,
    kind: RequestKind,
    application_id: UUID,
    profile_id: UUID,
    params: RequestParams,
    now: datetime,
    renewal_of_id: UUID | None = None,
    requested_by: UUID | None = None,
    idempotency_key: str | None = None,
    body_fingerprint: str | None = None,
) -> dict[str, Any]:
    """A `pending` request, every column of `certificate_requests` by name; `params` are
    stored without their unset (`None`) fields, which the issuer reads back as defaults."""
    return {
        "id": id,
        "application_id": application_id,
        "profile_id": profile_id,
        "method": params.method.value,
        "kind": kind.value,
        "status": RequestStatus.PENDING.value,
        "params": params.model_dump(mode="json", exclude_none=True),
        "error": None,
        "error_details": [],
        "idempotency_key": idempotency_key,
        "body_fingerprint": body_fingerprint,
        "certificate_id": None,
        "renewal_of_id": renewal_of_id,
        "requested_by": requested_by,
        "created_at": now,
        "completed_at": None,
    }
