"""What a batch of certificate requests reads and writes, in plain SQL on one connection.

The batch's transaction locks its requests (and the certificates it renews) `FOR UPDATE`, loads
what they refer to with one query per table, and at the end writes everything the batch decided
with one pipelined `executemany` per kind of change: new certificates, request outcomes,
renewed certificates, outbox messages. The rows travel as the SQLModel classes of
`certforge.common.db.tables`, used as plain data (no session): the planning code reads and sets
their attributes as before, and the statements' columns come from the table models
(`certforge.common.db.columns`), computed once at import.

Why not the ORM here: its unit of work, statement compilation and greenlet hops cost more of the
issuer's CPU than PostgreSQL spent answering (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import asyncpg
from sqlmodel import SQLModel

from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.db.columns import insert_sql, insertable, update_by_id_sql, values
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    OutboxMessage,
    Policy,
    Profile,
    ProfileAttachment,
)
from certforge.common.issuance import IssuingCA, ProfileDefaults
from certforge.common.outbox import MESSAGE_COLUMNS, message_row
from certforge.common.policy import PolicyDocument
from certforge.common.profile_extensions import ProfileExtensions

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

ModelT = TypeVar("ModelT", bound=SQLModel)


@dataclass
class Batch:
    """Everything the requests of a batch refer to, by id."""

    applications: dict[UUID, Application] = field(default_factory=dict)
    profiles: dict[UUID, Profile] = field(default_factory=dict)
    policies: dict[UUID, Policy] = field(default_factory=dict)
    cas: dict[UUID, CertificateAuthority] = field(default_factory=dict)
    attachments: dict[tuple[UUID, UUID], ProfileAttachment] = field(default_factory=dict)
    renewed: dict[UUID, Certificate] = field(default_factory=dict)
    """Certificates being renewed, by id (locked with the batch)."""
    _parsed: dict[tuple[str, UUID], Any] = field(default_factory=dict)

    def policy_document(self, policy_id: UUID) -> PolicyDocument:
        """The policy's document, parsed once per batch (not once per request)."""
        key = ("policy", policy_id)
        if key not in self._parsed:
            self._parsed[key] = PolicyDocument.model_validate(self.policies[policy_id].document)
        document: PolicyDocument = self._parsed[key]
        return document

    def profile_defaults(self, profile_id: UUID) -> ProfileDefaults:
        """The profile's defaults, parsed once per batch."""
        key = ("defaults", profile_id)
        if key not in self._parsed:
            self._parsed[key] = ProfileDefaults.model_validate(self.profiles[profile_id].defaults)
        defaults: ProfileDefaults = self._parsed[key]
        return defaults

    def issuing_ca(self, ca_id: UUID) -> IssuingCA:
        """The CA as resolution sees it, its chain's name constraints parsed once per batch."""
        key = ("ca", ca_id)
        if key not in self._parsed:
            self._parsed[key] = IssuingCA.of(self.cas[ca_id])
        issuing: IssuingCA = self._parsed[key]
        return issuing

    def profile_extensions(self, profile_id: UUID) -> ProfileExtensions:
        """The profile's extensions as they are now (a renewal gets the current ones too),
        parsed once per batch; the profile row is loaded anyway, so this costs no query."""
        key = ("extensions", profile_id)
        if key not in self._parsed:
            self._parsed[key] = ProfileExtensions.model_validate(
                self.profiles[profile_id].extensions
            )
        extensions: ProfileExtensions = self._parsed[key]
        return extensions


def _models(model: type[ModelT], rows: Sequence[asyncpg.Record]) -> list[ModelT]:
    return [model(**dict(row)) for row in rows]


async def lock_requests(conn: Connection, request_ids: list[UUID]) -> list[CertificateRequest]:
    """The requests, locked in id order (two batches never wait on each other in a cycle)."""
    rows = await conn.fetch(
        "SELECT * FROM certificate_requests WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
        sorted(set(request_ids)),
    )
    return _models(CertificateRequest, rows)


async def load(conn: Connection, requests: list[CertificateRequest]) -> Batch:
    app_ids = list({r.application_id for r in requests})
    profile_ids = list({r.profile_id for r in requests})
    renewed_ids = sorted({r.renewal_of_id for r in requests if r.renewal_of_id is not None})
    result = Batch()
    for app in await _by_ids(conn, Application, app_ids):
        result.applications[app.id] = app
    for profile in await _by_ids(conn, Profile, profile_ids):
        result.profiles[profile.id] = profile
    policy_ids = list({p.policy_id for p in result.profiles.values()})
    ca_ids = list({p.ca_id for p in result.profiles.values()})
    for policy in await _by_ids(conn, Policy, policy_ids):
        result.policies[policy.id] = policy
    for ca in await _by_ids(conn, CertificateAuthority, ca_ids):
        result.cas[ca.id] = ca
    attachments = await conn.fetch(
        "SELECT * FROM application_profiles "
        "WHERE application_id = ANY($1::uuid[]) AND profile_id = ANY($2::uuid[])",
        app_ids,
        profile_ids,
    )
    for attachment in _models(ProfileAttachment, attachments):
        result.attachments[(attachment.application_id, attachment.profile_id)] = attachment
    if renewed_ids:
        rows = await conn.fetch(
            "SELECT * FROM certificates WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            renewed_ids,
        )
        for old in _models(Certificate, rows):
            result.renewed[old.id] = old
    return result


async def _by_ids(conn: Connection, model: type[ModelT], ids: list[UUID]) -> list[ModelT]:
    table = model.__tablename__
    sql = f"SELECT * FROM {table} WHERE id = ANY($1::uuid[])"  # noqa: S608 - a table's name
    return _models(model, await conn.fetch(sql, ids))


_CERTIFICATE_COLUMNS = insertable(Certificate)
_INSERT_CERTIFICATE = insert_sql(Certificate, _CERTIFICATE_COLUMNS)
_INSERT_OUTBOX = insert_sql(OutboxMessage, MESSAGE_COLUMNS)
_REQUEST_OUTCOME = ("status", "error", "error_details", "certificate_id", "completed_at")
_RENEWED_STATE = (
    "status",
    "renewed_by_id",
    "renewing_request_id",
    "renewal_error",
    "renewal_attempts",
    "renew_at",
    "updated_at",
)
_UPDATE_REQUEST = update_by_id_sql(CertificateRequest, _REQUEST_OUTCOME)
_UPDATE_RENEWED = update_by_id_sql(Certificate, _RENEWED_STATE)


@dataclass
class Writes:
    """What the batch decided, written by `flush` inside its transaction."""

    certificates: list[Certificate] = field(default_factory=list)
    requests: dict[UUID, CertificateRequest] = field(default_factory=dict)
    renewed: dict[UUID, Certificate] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def request(self, request: CertificateRequest) -> None:
        self.requests[request.id] = request

    def old_certificate(self, certificate: Certificate) -> None:
        self.renewed[certificate.id] = certificate

    def message(self, subject: str, event: CloudEvent[MessageData]) -> None:
        self.messages.append(message_row(subject, event))

    async def flush(self, conn: Connection) -> None:
        # In foreign-key order: a new certificate before the request and the certificate that
        # point at it.
        await _each(conn, _INSERT_CERTIFICATE, self.certificates, _CERTIFICATE_COLUMNS)
        await _each(conn, _UPDATE_REQUEST, self.requests.values(), ("id", *_REQUEST_OUTCOME))
        await _each(conn, _UPDATE_RENEWED, self.renewed.values(), ("id", *_RENEWED_STATE))
        if self.messages:
            await conn.executemany(
                _INSERT_OUTBOX, [values(m, MESSAGE_COLUMNS) for m in self.messages]
            )


async def _each(conn: Connection, sql: str, rows: Any, columns: Sequence[str]) -> None:
    args = [[getattr(row, c) for c in columns] for row in rows]
    if args:
        await conn.executemany(sql, args)
