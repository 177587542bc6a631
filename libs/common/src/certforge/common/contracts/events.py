"""Events on the `<NS>_EVENTS` stream, subject `<ns>.evt.<application>.<name>`.

Events describe what happened for other systems (syncer, notifier, customers' consumers).
They never carry private keys; a consumer that needs the certificate fetches it, or reads the
public PEM included here.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from certforge.common.contracts.envelope import MessageData
from certforge.common.template import San


class CertificateInfo(MessageData):
    """Public facts about a certificate, shared by the certificate events."""

    certificate_id: UUID
    application_id: UUID
    application: str
    profile: str
    ca_id: UUID
    serial_number: str
    common_name: str | None = None
    sans: list[San] = []
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    certificate_pem: str
    metadata: dict[str, str] = {}


class CertificateIssued(CertificateInfo):
    event_type = "io.certforge.certificate.issued.v1"
    event_name = "certificate.issued"
    request_id: UUID


class CertificateRenewed(CertificateInfo):
    event_type = "io.certforge.certificate.renewed.v1"
    event_name = "certificate.renewed"
    request_id: UUID
    renewed_from_id: UUID


class CertificateRenewalFailed(MessageData):
    event_type = "io.certforge.certificate.renewal_failed.v1"
    event_name = "certificate.renewal_failed"
    certificate_id: UUID
    application_id: UUID
    application: str
    request_id: UUID
    reason: str
    attempts: int
    next_attempt_at: datetime | None = None


class CertificateRevoked(MessageData):
    event_type = "io.certforge.certificate.revoked.v1"
    event_name = "certificate.revoked"
    certificate_id: UUID
    application_id: UUID
    application: str
    ca_id: UUID
    serial_number: str
    reason: str
    revoked_at: datetime


class CertificateExpired(MessageData):
    event_type = "io.certforge.certificate.expired.v1"
    event_name = "certificate.expired"
    certificate_id: UUID
    application_id: UUID
    application: str
    not_after: datetime


class CertificateExpiring(MessageData):
    event_type = "io.certforge.certificate.expiring.v1"
    event_name = "certificate.expiring"
    certificate_id: UUID
    application_id: UUID
    application: str
    not_after: datetime
    threshold: str


class RequestFailed(MessageData):
    event_type = "io.certforge.request.failed.v1"
    event_name = "request.failed"
    request_id: UUID
    application_id: UUID
    application: str
    reason: str
    errors: list[dict[str, str]] = []


class SyncSucceeded(MessageData):
    event_type = "io.certforge.sync.succeeded.v1"
    event_name = "sync.succeeded"
    sync_id: UUID
    sync: str
    kind: str
    application_id: UUID
    application: str
    certificate_id: UUID
    lineage_id: UUID
    action: str
    external_id: str | None = None


class SyncFailed(MessageData):
    event_type = "io.certforge.sync.failed.v1"
    event_name = "sync.failed"
    sync_id: UUID
    sync: str
    kind: str
    application_id: UUID
    application: str
    certificate_id: UUID
    lineage_id: UUID
    action: str
    error: str
    attempts: int


class ChallengeValidated(MessageData):
    """The validator's verdict on one ACME challenge (`valid` or `invalid`, with the ACME
    problem when invalid)."""

    event_type = "io.certforge.acme.challenge_validated.v1"
    event_name = "acme.challenge.validated"
    challenge_id: UUID
    authorization_id: UUID
    order_id: UUID
    application_id: UUID
    application: str
    type: str
    identifier: str
    status: str
    error: dict[str, object] | None = None


class AlertDeliveryFailed(MessageData):
    """An alert could not be delivered through one channel after every retry."""

    event_type = "io.certforge.alert.delivery_failed.v1"
    event_name = "alert.delivery_failed"
    alert_id: UUID
    alert: str
    event: str
    application_id: UUID
    application: str
    channel_id: UUID
    channel_type: str
    deliveries: list[UUID]
    subjects: list[UUID]
    error: str
    attempts: int
