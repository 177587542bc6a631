"""The PostgreSQL schema of the whole domain, as SQLModel tables.

Each table has one owning service that writes it (noted per class); the others read it or learn
of changes through events. Enums are stored as text, not PostgreSQL enum types, so a new member
is a code change and not a migration. Timestamps are `timestamptz`, always UTC-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from certforge.common.domain import RequestKind


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json(default: Any) -> Any:
    return Field(
        default_factory=lambda: type(default)(default),
        sa_column=sa.Column(
            JSONB, nullable=False, server_default=sa.text(f"'{_jsonlit(default)}'")
        ),
    )


def _jsonlit(value: Any) -> str:
    return "{}" if isinstance(value, dict) else "[]"


def _fk(
    target: str, *, nullable: bool = False, ondelete: str = "RESTRICT", index: bool = True
) -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index
        ),
    )


class Identity(SQLModel, table=True):
    """A person or machine that holds tokens. Owner: api."""

    __tablename__ = "identities"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    is_product_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    disabled_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ApiToken(SQLModel, table=True):
    """A bearer token, stored as the SHA-256 of a 256-bit random secret. Owner: api."""

    __tablename__ = "api_tokens"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    identity_id: UUID = _fk("identities.id", ondelete="CASCADE")
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    prefix: str = Field(max_length=16, description="first characters, to recognise a token")
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_used_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    kind: str = Field(
        default="static",
        max_length=16,
        sa_column_kwargs={"server_default": "static"},
        description="static (created by an admin) or access (minted by a login)",
    )
    auth_method_id: UUID | None = _fk(
        "identity_auth_methods.id", nullable=True, ondelete="SET NULL", index=False
    )
    """The auth method whose login minted this access token; None for static tokens."""


class Application(SQLModel, table=True):
    """A tenant: a service or a team. Owner: api."""

    __tablename__ = "applications"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    slug: str = Field(max_length=63, sa_column_kwargs={"unique": True})
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Membership(SQLModel, table=True):
    """An identity's role in one application. Owner: api."""

    __tablename__ = "memberships"

    application_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
        )
    )
    identity_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("identities.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        )
    )
    role: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class CertificateAuthority(SQLModel, table=True):
    """A CA of ours. Owner: issuer (the only holder of CA keys); the api flips `status` and,
    with the renewer for scheduled ones, records take-overs (`took_over_at`)."""

    __tablename__ = "certificate_authorities"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    type: str = Field(max_length=16)
    status: str = Field(max_length=16)
    parent_id: UUID | None = _fk("certificate_authorities.id", nullable=True)
    subject_dn: str
    key_algorithm: str = Field(max_length=16)
    signature_hash: str | None = Field(default=None, max_length=16)
    max_path_length: int | None = None
    serial_number: str = Field(max_length=64)
    not_before: datetime = Field(sa_type=sa.DateTime(timezone=True))
    not_after: datetime = Field(sa_type=sa.DateTime(timezone=True))
    certificate_pem: str
    chain_pem: str = Field(default="", description="issuers above this CA, nearest first")
    subject_key_id: str = Field(max_length=128)
    # Its certificate's `NameConstraints` (certforge.common.name_constraints), and those of the
    # CAs above it, nearest first: issuance checks them all.
    name_constraints: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(JSONB, nullable=True)
    )
    chain_name_constraints: list[dict[str, Any]] = _json([])
    encrypted_private_key: bytes = Field(sa_type=sa.LargeBinary)
    key_kek_id: str = Field(max_length=64)
    crl_number: int = Field(default=0, sa_type=sa.BigInteger)
    early_renewal_requested_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        description="an admin asked for every certificate this CA issued before then to be "
        "renewed early (ARI)",
    )
    crl_dirty: bool = Field(
        default=True,
        sa_column_kwargs={"server_default": sa.true()},
        description="a revocation awaits the next CRL",
    )
    # Rollover (renewed or rekeyed CA): the CA this one succeeds, and when the predecessor's
    # profiles move here (scheduled, then done). The predecessor keeps its CRLs and OCSP.
    predecessor_id: UUID | None = _fk("certificate_authorities.id", nullable=True, index=False)
    takes_over_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    took_over_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class CACrossCertificate(SQLModel, table=True):
    """A certificate of CA `ca_id` (same subject and key) signed by another CA of ours, so a
    relying party that trusts only the signer's root can build a path to it. Owner: issuer."""

    __tablename__ = "ca_cross_certificates"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    ca_id: UUID = _fk("certificate_authorities.id", ondelete="CASCADE")
    signer_ca_id: UUID = _fk("certificate_authorities.id", ondelete="CASCADE", index=False)
    serial_number: str = Field(max_length=64)
    not_before: datetime = Field(sa_type=sa.DateTime(timezone=True))
    not_after: datetime = Field(sa_type=sa.DateTime(timezone=True))
    certificate_pem: str
    chain_pem: str = Field(default="", description="the signer and its issuers, nearest first")
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Policy(SQLModel, table=True):
    """What may be issued; `document` is a `certforge.common.policy.PolicyDocument`. Owner: api."""

    __tablename__ = "policies"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    description: str = Field(default="", max_length=1024)
    document: dict[str, Any] = _json({})
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Profile(SQLModel, table=True):
    """CA + policy + defaults. Owner: api; the renewer moves `ca_id` at a scheduled CA
    take-over (`common.ca_rollover.take_over`)."""

    __tablename__ = "profiles"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    slug: str = Field(max_length=63, sa_column_kwargs={"unique": True})
    name: str = Field(default="", max_length=128)
    description: str = Field(default="", max_length=1024)
    ca_id: UUID = _fk("certificate_authorities.id")
    policy_id: UUID = _fk("policies.id")
    defaults: dict[str, Any] = _json({})
    extensions: dict[str, Any] = _json({})
    """`certforge.common.profile_extensions.ProfileExtensions`; `{}` is today's behaviour."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class ProfileAttachment(SQLModel, table=True):
    """A profile attached to an application, with its enrollment settings. Owner: api."""

    __tablename__ = "application_profiles"

    application_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
        )
    )
    profile_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("profiles.id", ondelete="RESTRICT"), primary_key=True, index=True
        )
    )
    api_enabled: bool = False
    api_auto_renew: bool = True
    api_renew_before_days: int = 30
    acme_enabled: bool = False
    acme_eab_required: bool = False
    acme_challenge_types: list[Any] = Field(
        default_factory=lambda: ["http-01", "dns-01", "tls-alpn-01"],
        sa_column=sa.Column(
            JSONB,
            nullable=False,
            server_default=sa.text('\'["http-01", "dns-01", "tls-alpn-01"]\''),
        ),
    )
    acme_renew_before_days: int = Field(
        default=30, description="what ARI's suggested renewal window is derived from"
    )
    acme_terms_of_service: str | None = Field(default=None, max_length=2048)
    acme_website: str | None = Field(default=None, max_length=2048)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class CertificateRequest(SQLModel, table=True):
    """One issuance attempt. Owner: api creates it `pending`; the issuer completes it."""

    __tablename__ = "certificate_requests"
    __table_args__ = (
        sa.UniqueConstraint("application_id", "idempotency_key", name="uq_request_idempotency"),
        sa.Index("ix_requests_app_created", "application_id", "created_at"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    application_id: UUID = _fk("applications.id", index=False)
    profile_id: UUID = _fk("profiles.id")
    method: str = Field(max_length=16)
    kind: str = Field(default=RequestKind.ISSUE.value, max_length=16, description="issue or renew")
    status: str = Field(max_length=16, index=True)
    params: dict[str, Any] = _json({})
    error: str | None = None
    error_details: list[Any] = _json([])
    idempotency_key: str | None = Field(default=None, max_length=255)
    body_fingerprint: str | None = Field(default=None, max_length=64)
    certificate_id: UUID | None = None
    renewal_of_id: UUID | None = Field(default=None, index=True)
    requested_by: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    completed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Certificate(SQLModel, table=True):
    """An issued certificate. Owner: issuer (issue, renew, revoke); the api edits settings."""

    __tablename__ = "certificates"
    __table_args__ = (
        sa.UniqueConstraint("ca_id", "serial_number", name="uq_certificate_serial"),
        sa.UniqueConstraint("request_id", name="uq_certificate_request"),
        sa.Index("ix_certificates_app_not_after", "application_id", "not_after"),
        sa.Index(
            "ix_certificates_renewal_due",
            "renew_at",
            postgresql_where=sa.text(
                "status = 'active' AND auto_renew AND renewed_by_id IS NULL "
                "AND renewing_request_id IS NULL AND encrypted_private_key IS NOT NULL"
            ),
        ),
        sa.Index(
            "ix_certificates_active_not_after",
            "not_after",
            postgresql_where=sa.text("status IN ('active', 'renewed')"),
        ),
        sa.Index(
            "ix_certificates_revoked_by_ca",
            "ca_id",
            "not_after",
            postgresql_where=sa.text("status = 'revoked'"),
        ),
        sa.Index(
            "ix_certificates_inventory",
            "application_id",
            "profile_id",
            "status",
            postgresql_include=["not_after", "renewing_request_id"],
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    application_id: UUID = _fk("applications.id", index=False)
    profile_id: UUID = _fk("profiles.id")
    ca_id: UUID = _fk("certificate_authorities.id")
    request_id: UUID = _fk("certificate_requests.id", index=False)
    serial_number: str = Field(max_length=64)
    common_name: str | None = Field(default=None, max_length=64)
    subject_dn: str
    sans: list[Any] = _json([])
    key_algorithm: str = Field(max_length=16)
    signature_hash: str | None = Field(default=None, max_length=16)
    method: str = Field(max_length=16)
    not_before: datetime = Field(sa_type=sa.DateTime(timezone=True))
    not_after: datetime = Field(sa_type=sa.DateTime(timezone=True))
    status: str = Field(max_length=16)
    certificate_pem: str
    fingerprint_sha256: str = Field(max_length=64)
    encrypted_private_key: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    key_kek_id: str | None = Field(default=None, max_length=64)
    tags: dict[str, Any] = _json({})
    auto_renew: bool = True
    renew_before_days: int = 30
    renew_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    lineage_id: UUID | None = Field(
        default=None,
        index=True,
        description="the first certificate of the renewal chain (own id when not a renewal): "
        "what sync destinations key their objects by, so a renewal replaces in place",
    )
    renewed_from_id: UUID | None = _fk("certificates.id", nullable=True)
    renewed_by_id: UUID | None = Field(default=None)
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revocation_reason: str | None = Field(default=None, max_length=32)
    renewal_error: str | None = None
    renewal_attempts: int = 0
    renewing_request_id: UUID | None = Field(
        default=None, description="the renewal in flight; set by the renewer's claim"
    )
    expiry_notified_days: int | None = Field(
        default=None, description="smallest expiry threshold (days) already announced"
    )
    early_renewal_requested_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        description="an admin asked for this certificate to be renewed early (ARI moves its "
        "suggested window to now)",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class OutboxMessage(SQLModel, table=True):
    """A message to publish, written in the same transaction as the change it announces.

    Owner: whichever service wrote it; every service runs a relay over its own rows' table
    (they share one table; rows are claimed with SKIP LOCKED so relays never double-publish).
    `id` is the CloudEvents id and the `Nats-Msg-Id`, so a re-publish is de-duplicated.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_unsent", "seq", postgresql_where=sa.text("sent_at IS NULL")),
        sa.Index("ix_outbox_sent_at", "sent_at", postgresql_where=sa.text("sent_at IS NOT NULL")),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    seq: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
    )
    subject: str = Field(max_length=255)
    payload: bytes = Field(sa_type=sa.LargeBinary)
    headers: dict[str, Any] = _json({})
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    attempts: int = 0
    last_error: str | None = None
    publish_after: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        description="relays leave the row alone until then: its writer publishes it itself "
        "right after the commit (`OutboxRelay.publish_soon`); should the writer die first, any "
        "relay publishes it after this",
    )


class AuditEvent(SQLModel, table=True):
    """Append-only record of every change and every refused attempt. Owner: api (and issuer)."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_app_time", "application_id", "occurred_at"),)

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), primary_key=True),
    )
    occurred_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), index=True
    )
    actor_id: UUID | None = Field(default=None, index=True)
    actor_name: str = Field(default="", max_length=128)
    action: str = Field(max_length=64, index=True)
    resource_type: str = Field(max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    application_id: UUID | None = None
    outcome: str = Field(max_length=16)
    status_code: int | None = None
    details: dict[str, Any] = _json({})
    request_id: str | None = Field(default=None, max_length=64)


class AuditChainLink(SQLModel, table=True):
    """The hash chain over the audit log, one link per sealed entry (see
    `certforge.common.audit_chain`). Kept beside `audit_events` so that the log itself stays
    append-only and its hot-path INSERT unchanged. Owner: renewer (the sealer)."""

    __tablename__ = "audit_chain"
    __table_args__ = (sa.Index("ix_audit_chain_app_seq", "application_id", "seq"),)

    event_id: int = Field(
        sa_column=sa.Column(
            sa.BigInteger, sa.ForeignKey("audit_events.id", ondelete="RESTRICT"), primary_key=True
        )
    )
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, unique=True))
    application_id: UUID | None = None
    prev_hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    app_prev_hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    entry_hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))


class RateBucket(SQLModel, table=True):
    """A token bucket of a rate limit (per identity for issuance, login). UNLOGGED: a crash or a
    failover that empties it only refills every bucket, and taking a token writes no WAL.
    Owner: api."""

    __tablename__ = "rate_buckets"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: str = Field(primary_key=True, max_length=200)
    tokens: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class Crl(SQLModel, table=True):
    """A signed CRL of one CA; the newest per CA is served. Owner: issuer."""

    __tablename__ = "crls"
    __table_args__ = (sa.UniqueConstraint("ca_id", "number", name="uq_crl_number"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    ca_id: UUID = _fk("certificate_authorities.id", ondelete="CASCADE", index=False)
    number: int = Field(sa_type=sa.BigInteger)
    this_update: datetime = Field(sa_type=sa.DateTime(timezone=True))
    next_update: datetime = Field(sa_type=sa.DateTime(timezone=True))
    entries: int = 0
    der: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class OcspResponder(SQLModel, table=True):
    """A delegated OCSP signing certificate of one CA (id-kp-OCSPSigning, ocsp-nocheck).

    Issued by the issuer; its key is encrypted under the leaf key ring so the api, which
    answers OCSP, can sign responses without ever holding a CA key. Owner: issuer.
    """

    __tablename__ = "ocsp_responders"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    ca_id: UUID = _fk("certificate_authorities.id", ondelete="CASCADE")
    certificate_pem: str
    encrypted_private_key: bytes = Field(sa_type=sa.LargeBinary)
    key_kek_id: str = Field(max_length=64)
    not_before: datetime = Field(sa_type=sa.DateTime(timezone=True))
    not_after: datetime = Field(sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class OcspResponse(SQLModel, table=True):
    """The pre-signed OCSP answer about one certificate (or sub-CA) of one CA, SHA-1 CertID, no
    nonce: what api replicas serve from memory. Signed at a certificate's first OCSP request, at
    its revocation (in the revoking transaction) and again past half its validity. Owner: api.
    """

    __tablename__ = "ocsp_responses"

    ca_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("certificate_authorities.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    serial_number: str = Field(max_length=64, primary_key=True)
    """As `certificates.serial_number`: lower-case hex, no leading zeros."""
    status: str = Field(max_length=16)
    """`good` or `revoked` (unknown serials are never stored)."""
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revocation_reason: str | None = Field(default=None, max_length=32)
    this_update: datetime = Field(sa_type=sa.DateTime(timezone=True))
    next_update: datetime = Field(sa_type=sa.DateTime(timezone=True))
    der: bytes = Field(sa_type=sa.LargeBinary)


class SyncDestination(SQLModel, table=True):
    """An external store an application's certificates are pushed to. Owner: api (config);
    the syncer reads it."""

    __tablename__ = "sync_destinations"
    __table_args__ = (sa.UniqueConstraint("application_id", "name", name="uq_sync_name"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    application_id: UUID = _fk("applications.id", ondelete="CASCADE")
    name: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    settings: dict[str, Any] = _json({})
    encrypted_credentials: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    credentials_kek_id: str | None = Field(default=None, max_length=64)
    selector: dict[str, Any] = _json({})
    options: dict[str, Any] = _json({})
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class SyncState(SQLModel, table=True):
    """Where one certificate lineage stands at one destination. Owner: syncer."""

    __tablename__ = "sync_states"
    __table_args__ = (sa.Index("ix_sync_states_page", "sync_id", "created_at", "lineage_id"),)

    sync_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("sync_destinations.id", ondelete="CASCADE"), primary_key=True
        )
    )
    lineage_id: UUID = Field(sa_column=sa.Column(sa.Uuid, primary_key=True))
    certificate_id: UUID = Field(index=True)
    status: str = Field(max_length=16, description="pending, succeeded, failed, skipped, removed")
    action: str = Field(default="push", max_length=16, description="push or remove")
    external_id: str | None = Field(default=None, max_length=2048)
    attempts: int = 0
    last_error: str | None = None
    last_synced_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        description="when this destination first saw the lineage: the order its states page in",
    )


class PooledKey(SQLModel, table=True):
    """A pre-generated managed key waiting to be used, encrypted under the leaf key ring (AAD =
    its id). Claimed with DELETE … RETURNING in the transaction that stores the certificate,
    so a key is handed out once or not at all. Owner: issuer."""

    __tablename__ = "key_pool"
    __table_args__ = (sa.Index("ix_key_pool_algorithm", "key_algorithm", "created_at"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    key_algorithm: str = Field(max_length=16)
    encrypted_key: bytes = Field(sa_type=sa.LargeBinary)
    key_kek_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


# --- ACME (RFC 8555). Owner: api, except the validation results (validator). ----------------


class AcmeEabKey(SQLModel, table=True):
    """An External Account Binding key of one ACME enrollment (application + profile).

    The HMAC key must be recoverable to check a MAC, so it is encrypted under the leaf key ring
    (AAD = the key id), never hashed. Bound to at most one account. Owner: api."""

    __tablename__ = "acme_eab_keys"

    id: str = Field(primary_key=True, max_length=64, description="the EAB key identifier")
    application_id: UUID = _fk("applications.id", ondelete="CASCADE")
    profile_id: UUID = _fk("profiles.id", ondelete="CASCADE", index=False)
    name: str = Field(default="", max_length=128)
    encrypted_hmac_key: bytes = Field(sa_type=sa.LargeBinary)
    key_kek_id: str = Field(max_length=64)
    created_by: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    account_id: UUID | None = Field(default=None, description="the account it was bound to")
    bound_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class AcmeAccount(SQLModel, table=True):
    """An ACME account: a public key registered at one directory (application + profile).
    Owner: api."""

    __tablename__ = "acme_accounts"
    __table_args__ = (
        sa.UniqueConstraint(
            "application_id", "profile_id", "jwk_thumbprint", name="uq_acme_account_key"
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    application_id: UUID = _fk("applications.id", ondelete="CASCADE", index=False)
    profile_id: UUID = _fk("profiles.id", ondelete="CASCADE")
    status: str = Field(default="valid", max_length=16, description="valid, deactivated, revoked")
    jwk: dict[str, Any] = _json({})
    jwk_thumbprint: str = Field(max_length=64, description="RFC 7638, base64url SHA-256")
    contact: list[Any] = _json([])
    eab_key_id: str | None = Field(default=None, max_length=64)
    terms_agreed: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class AcmeOrder(SQLModel, table=True):
    """An ACME order: `pending → ready → processing → valid | invalid`.

    Finalize moves `ready → processing` with a guarded UPDATE and, in the same transaction,
    writes a `csr` certificate request and its issue command, so a finalize is processed once
    whatever the retries; `valid`/`invalid` then follow from that request. Owner: api (the
    validator moves `pending → ready | invalid`)."""

    __tablename__ = "acme_orders"
    __table_args__ = (sa.Index("ix_acme_orders_account", "account_id", "created_at"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    account_id: UUID = _fk("acme_accounts.id", ondelete="CASCADE", index=False)
    application_id: UUID = _fk("applications.id", ondelete="CASCADE", index=False)
    profile_id: UUID = _fk("profiles.id", ondelete="CASCADE", index=False)
    status: str = Field(default="pending", max_length=16, index=True)
    identifiers: list[Any] = _json([])
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    error: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    request_id: UUID | None = _fk("certificate_requests.id", nullable=True, index=False)
    certificate_id: UUID | None = Field(default=None)
    replaces: str | None = Field(
        default=None, max_length=255, description="ARI certificate identifier it replaces"
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class AcmeAuthorization(SQLModel, table=True):
    """Proof of control over one identifier for one order. Owner: api creates it `pending`;
    the validator sets `valid`/`invalid`; the account may deactivate it."""

    __tablename__ = "acme_authorizations"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    order_id: UUID = _fk("acme_orders.id", ondelete="CASCADE")
    account_id: UUID = _fk("acme_accounts.id", ondelete="CASCADE", index=False)
    identifier_type: str = Field(max_length=8, description="dns or ip")
    identifier_value: str = Field(max_length=253)
    wildcard: bool = False
    status: str = Field(default="pending", max_length=16)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class AcmeChallenge(SQLModel, table=True):
    """One way to prove an authorization: `pending → processing → valid | invalid`.
    Owner: api (pending → processing, and the validate command); validator (the result)."""

    __tablename__ = "acme_challenges"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    authorization_id: UUID = _fk("acme_authorizations.id", ondelete="CASCADE")
    type: str = Field(max_length=16, description="http-01, dns-01 or tls-alpn-01")
    token: str = Field(max_length=64, description="base64url of 32 random bytes")
    status: str = Field(default="pending", max_length=16)
    error: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    attempts: int = 0
    validated_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class AcmeNonce(SQLModel, table=True):
    """An issued, not yet used `Replay-Nonce`. Consumed with DELETE … RETURNING, so each is
    accepted once by whichever api replica sees it first. Owner: api."""

    __tablename__ = "acme_nonces"

    value: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)


# --- Alerts (issue 13). Owner: api (rules); notifier (firings and deliveries). ---------------


class AlertRule(SQLModel, table=True):
    """Who to tell, and how, when an application's certificates near expiry or change.
    Channel settings are `channels` (each with its `id` and `type`); their secrets are one
    envelope under the leaf key ring bound to the rule (`alerts.secrets_aad`). Owner: api."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        sa.UniqueConstraint("application_id", "name", name="uq_alert_rule_name"),
        sa.Index("ix_alert_rules_enabled_event", "event", postgresql_where=sa.text("enabled")),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    application_id: UUID = _fk("applications.id", ondelete="CASCADE")
    name: str = Field(max_length=128)
    event: str = Field(max_length=32, description="certforge.common.alerts.AlertEvent")
    before_seconds: int | None = Field(
        default=None, description="expiry window of expiring and ca_expiring"
    )
    filters: dict[str, Any] = _json({})
    channels: list[Any] = _json([])
    encrypted_secrets: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    secrets_kek_id: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    digest: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class AlertFiring(SQLModel, table=True):
    """That a rule has fired for one subject (certificate, CA, request) in one window: the
    primary key makes "exactly one alert per certificate, rule and window" a database fact.
    Inserted with ON CONFLICT DO NOTHING, so only the replica whose insert lands delivers, and
    a scan repeated or a notifier restarted finds the row and sends nothing. `matched` false
    records a subject the rule's filters left out, so the scan does not read it again.
    Owner: notifier."""

    __tablename__ = "alert_firings"

    rule_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True
        )
    )
    subject_id: UUID = Field(sa_column=sa.Column(sa.Uuid, primary_key=True))
    window_key: str = Field(
        sa_column=sa.Column(sa.String(128), primary_key=True),
        description="expiring:<seconds>, issued, revoked, sync:<sync>:<event>, …",
    )
    matched: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class AlertDelivery(SQLModel, table=True):
    """One alert through one channel (a PagerDuty resolve is its own row), with its status:
    `pending` (waiting for `next_attempt_at`), `delivered` or `failed`. A worker leases due rows
    (`lease_until`) before it sends, so a notifier that dies mid-send leaves them due again
    after the lease. Owner: notifier."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        sa.UniqueConstraint(
            "rule_id",
            "subject_id",
            "window_key",
            "channel_id",
            "action",
            name="uq_alert_delivery",
        ),
        sa.Index("ix_alert_deliveries_rule_created", "rule_id", "created_at"),
        sa.Index(
            "ix_alert_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.Index(
            "ix_alert_deliveries_pagerduty",
            "subject_id",
            postgresql_where=sa.text("dedup_key IS NOT NULL"),
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    rule_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False
        )
    )
    application_id: UUID
    subject_kind: str = Field(max_length=16, description="certificate, ca or request")
    subject_id: UUID
    window_key: str = Field(max_length=128)
    channel_id: UUID
    channel_type: str = Field(max_length=16)
    action: str = Field(default="trigger", max_length=16, description="trigger or resolve")
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: str | None = None
    payload: dict[str, Any] = _json({})
    """What the alert says about its subject (name, expiry, reason), fixed when it fired."""
    dedup_key: str | None = Field(
        default=None, max_length=255, description="PagerDuty's incident key, for the resolve"
    )
    digest: bool = False
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    lease_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    delivered_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class IdentityAuthMethod(SQLModel, table=True):
    """A way for an identity to log in without a stored secret (a JWT from a trusted issuer):
    the configuration holds only public material (issuer URL, JWKS, PEM public keys), so it
    is stored as plain JSON. Owner: api."""

    __tablename__ = "identity_auth_methods"
    __table_args__ = (sa.UniqueConstraint("identity_id", "name", name="uq_auth_method_name"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    identity_id: UUID = _fk("identities.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16, description="jwt")
    config: dict[str, Any] = _json({})
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class UsedJwtId(SQLModel, table=True):
    """A JWT `jti` already exchanged for an access token, kept until the JWT expires so that a
    replay is refused by every api replica. Owner: api."""

    __tablename__ = "used_jwt_ids"

    issuer: str = Field(max_length=512, primary_key=True)
    jti: str = Field(max_length=256, primary_key=True)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)


class IdentityCertificateBinding(SQLModel, table=True):
    """Certificates Certforge issued that authenticate an identity over mTLS: those of one
    profile whose common name and/or a SAN match glob patterns. Owner: api."""

    __tablename__ = "identity_certificate_bindings"
    __table_args__ = (sa.UniqueConstraint("identity_id", "name", name="uq_cert_binding_name"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    identity_id: UUID = _fk("identities.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    profile_id: UUID = _fk("profiles.id", ondelete="CASCADE")
    common_name: str | None = Field(default=None, max_length=255, description="glob pattern")
    san: str | None = Field(default=None, max_length=255, description="glob pattern")
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
