"""Commands on the `<NS>_COMMANDS` work-queue stream: each is consumed by exactly one issuer."""

from __future__ import annotations

from typing import Literal
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


class SyncCertificate(MessageData):
    """Push the certificate `certificate_id` of lineage `lineage_id` to the destination
    `sync_id`, or remove it from there. One task per destination, so each is retried alone."""

    event_type = "io.certforge.command.sync.v1"
    sync_id: UUID
    lineage_id: UUID
    certificate_id: UUID
    application_id: UUID
    action: Literal["push", "remove"]
    reason: str = Field(default="", description="what caused it: issued, renewed, revoked, run")


class ValidateChallenge(MessageData):
    """Check the ACME challenge `challenge_id` (its type, token, identifier and the account's
    key thumbprint are in the database) and record the result on the challenge, its
    authorization and its order."""

    event_type = "io.certforge.command.validate_challenge.v1"
    challenge_id: UUID
    application_id: UUID
