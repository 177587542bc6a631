"""Commands on the `<NS>_COMMANDS` work-queue stream: each is consumed by exactly one issuer."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from certforge.common.contracts.envelope import MessageData


class IssueCertificate(MessageData):
    """Sign the pending request `request_id` (its parameters are in the database)."""

    event_type = "io.certforge.command.issue.v1"
    request_id: UUID
    application_id: UUID


class RenewCertificate(MessageData):
    """Issue the successor of `certificate_id` through the pending request `request_id`."""

    event_type = "io.certforge.command.renew.v1"
    request_id: UUID
    certificate_id: UUID
    application_id: UUID


class RevokeCertificate(MessageData):
    event_type = "io.certforge.command.revoke.v1"
    certificate_id: UUID
    application_id: UUID
    reason: str = Field(description="RFC 5280 CRLReason name, e.g. keyCompromise")
    requested_by: UUID | None = None
