"""Events on the `<NS>_EVENTS` stream, subject `<ns>.evt.<application>.<name>`.

Events describe what happened for other systems (syncer, notifier, customers' consumers).
They never carry private keys; a consumer that needs the certificate fetches it, or reads the
public PEM included here.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from certforge.common.contracts.envelope import MessageData
from certforge.common.template import San


class CertificateInfo(MessageData):
    """Public facts about a certificate, shared by the certificate events."""

    certificate_id: UUID = Field(
        description="the certificate: GET /api/v1/applications/{application}/certificates/{id}"
    )
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    profile: str = Field(description="the slug of the profile it was issued under")
    ca_id: UUID = Field(description="the issuing CA")
    serial_number: str = Field(description="the serial number, lower-case hex")
    common_name: str | None = Field(
        default=None, description="the subject's common name, if it has one"
    )
    sans: list[San] = Field(default_factory=list, description="the subject alternative names")
    not_before: datetime = Field(description="start of validity")
    not_after: datetime = Field(description="end of validity")
    fingerprint_sha256: str = Field(description="SHA-256 of the DER certificate, lower-case hex")
    certificate_pem: str = Field(description="the certificate, PEM (public; never a private key)")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="the certificate's metadata tags"
    )


class CertificateIssued(CertificateInfo):
    event_type = "io.certforge.certificate.issued.v1"
    event_name = "certificate.issued"
    request_id: UUID = Field(description="the certificate request it answers")


class CertificateRenewed(CertificateInfo):
    event_type = "io.certforge.certificate.renewed.v1"
    event_name = "certificate.renewed"
    request_id: UUID = Field(description="the renewal request it answers")
    renewed_from_id: UUID = Field(description="the certificate it replaces (now `renewed`)")


class CertificateRenewalFailed(MessageData):
    event_type = "io.certforge.certificate.renewal_failed.v1"
    event_name = "certificate.renewal_failed"
    certificate_id: UUID = Field(description="the certificate whose renewal failed (still active)")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    request_id: UUID = Field(description="the failed renewal request")
    reason: str = Field(description="why it failed")
    attempts: int = Field(description="failed renewal attempts so far")
    next_attempt_at: datetime | None = Field(
        default=None, description="when the renewer tries again (none: it will not)"
    )


class CertificateRevoked(MessageData):
    event_type = "io.certforge.certificate.revoked.v1"
    event_name = "certificate.revoked"
    certificate_id: UUID = Field(description="the revoked certificate")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    ca_id: UUID = Field(description="its CA, whose next CRL lists it")
    serial_number: str = Field(description="its serial number, lower-case hex")
    reason: str = Field(description="the RFC 5280 reason (keyCompromise, superseded, …)")
    revoked_at: datetime = Field(description="when it was revoked")


class CertificateExpired(MessageData):
    event_type = "io.certforge.certificate.expired.v1"
    event_name = "certificate.expired"
    certificate_id: UUID = Field(description="the certificate now `expired`")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    not_after: datetime = Field(description="the end of validity it passed")


class CertificateExpiring(MessageData):
    event_type = "io.certforge.certificate.expiring.v1"
    event_name = "certificate.expiring"
    certificate_id: UUID = Field(description="the certificate nearing expiry (still active)")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    not_after: datetime = Field(description="when it expires")
    threshold: str = Field(
        description="the threshold crossed (30d, 7d, 1d by default); one event per certificate "
        "and threshold"
    )


class RequestFailed(MessageData):
    event_type = "io.certforge.request.failed.v1"
    event_name = "request.failed"
    request_id: UUID = Field(description="the failed certificate request")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    reason: str = Field(description="why it failed or was rejected")
    errors: list[dict[str, str]] = Field(
        default_factory=list, description="the fields at fault: `field` and `message` each"
    )


class SyncSucceeded(MessageData):
    event_type = "io.certforge.sync.succeeded.v1"
    event_name = "sync.succeeded"
    sync_id: UUID = Field(description="the sync destination")
    sync: str = Field(description="its name")
    kind: str = Field(description="its kind (aws-acm, webhook, …)")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    certificate_id: UUID = Field(description="the certificate pushed or removed")
    lineage_id: UUID = Field(
        description="its lineage: the destination's object follows it across renewals"
    )
    action: str = Field(description="push or remove")
    external_id: str | None = Field(
        default=None, description="the object at the destination (ARN, path, URL, …)"
    )


class SyncFailed(MessageData):
    event_type = "io.certforge.sync.failed.v1"
    event_name = "sync.failed"
    sync_id: UUID = Field(description="the sync destination")
    sync: str = Field(description="its name")
    kind: str = Field(description="its kind (aws-acm, webhook, …)")
    application_id: UUID = Field(description="the application's id")
    application: str = Field(description="the application's slug (also the subject token)")
    certificate_id: UUID = Field(description="the certificate that could not be pushed or removed")
    lineage_id: UUID = Field(description="its lineage")
    action: str = Field(description="push or remove")
    error: str = Field(description="the destination's message")
    attempts: int = Field(description="attempts made")


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


class ConfigurationChanged(MessageData):
    """Who may do what, or what a profile issues, changed: every api replica drops the answers
    it keeps in memory for authentication and issuance requests (see the api's
    `access_cache`). Published through the outbox by the replica that committed the change, so
    it is never lost; published on `<ns>.evt._system.configuration.changed` (`_system` is no
    application slug)."""

    event_type = "io.certforge.configuration.changed.v1"
    event_name = "configuration.changed"
    resources: list[str] = Field(
        description="the kinds of configuration that changed, among `api_token`, `identity`, "
        "`membership`, `application`, `profile`, `enrollment`, `policy`, `ca`"
    )
