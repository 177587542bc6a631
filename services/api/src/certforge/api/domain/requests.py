"""Certificate requests: validate early, then write the request, its audit entry and the issue
command (outbox) in one transaction; the issuer does the rest.

Everything a caller can get wrong is refused here with a 422 naming the field, before anything
is stored; the issuer checks it all again, authoritatively, when it signs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import ENTRY_COLUMNS, AuditScope
from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain.common import (
    OPERATE_ROLES,
    READ_ROLES,
    application_for,
    as_uuid,
    by_slug_or_id,
    check_access,
    is_reference,
)
from certforge.api.schemas.certificates import CertificateRequestCreate
from certforge.api.schemas.common import decode_cursor, encode_cursor
from certforge.common.contracts.commands import IssueCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.crypto.csr import ParsedCsr, parse_csr
from certforge.common.db.columns import columns, insert_sql, select_list, values
from certforge.common.db.pool import Database, Row
from certforge.common.db.tables import (
    Application,
    AuditEvent,
    CertificateRequest,
    OutboxMessage,
    Profile,
)
from certforge.common.domain import KeyAlgorithm, RequestKind, RequestMethod, RequestStatus
from certforge.common.errors import (
    InvalidInput,
    NotFound,
    Unprocessable,
)
from certforge.common.issuance import IssuingCA, ProfileDefaults, RequestParams, resolve_template
from certforge.common.name_constraint_rules import name_violations
from certforge.common.name_constraints import chain_constraints
from certforge.common.outbox import DIRECT_LEASE, MESSAGE_COLUMNS, message_row
from certforge.common.policy import PolicyDocument, evaluate, refusal
from certforge.common.profile_extensions import ProfileExtensions, check_csr_extensions
from certforge.common.request_rows import new_request_row
from certforge.common.request_rules import Enrollment, check_enrollment
from certforge.common.template import CertificateTemplate

MAX_WAIT_SECONDS = 60
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?=$|[,;\s])", re.IGNORECASE)
_SOURCE = "/certforge/api"


def prefer_wait(header: str | None) -> int:
    """Seconds asked for by RFC 7240 `Prefer: wait=N`, capped at 60; 0 when absent."""
    if not header:
        return 0
    match = _PREFER_WAIT.search(header)
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else 0


def body_fingerprint(body: CertificateRequestCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What an answer shows of a certificate request: plain values, read from a row or an ORM
    object (an ORM object costs more to build than the hot path spends in PostgreSQL)."""

    id: UUID
    method: str
    kind: str
    status: str
    error: str | None
    error_details: list[Any]
    created_at: datetime
    completed_at: datetime | None
    certificate_id: UUID | None

    @classmethod
    def of(cls, request: CertificateRequest) -> RequestRecord:
        return cls(**{name: getattr(request, name) for name in _RECORD_FIELDS})

    @classmethod
    def of_row(cls, row: Row | Mapping[str, Any]) -> RequestRecord:
        return cls(**{name: row[name] for name in _RECORD_FIELDS})


_RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))


@dataclass(frozen=True)
class Submitted:
    """A request as its answer shows it: the row, and the slugs of its application and profile."""

    request: RequestRecord
    application_id: UUID
    application: str
    profile: str
    replayed: bool


def _target_sql(app_column: str, profile_column: str) -> str:
    return f"""
SELECT a.id AS app_id, a.slug AS app_slug,
       p.id AS profile_id, p.slug AS profile_slug, p.defaults, p.extensions,
       ap.application_id IS NOT NULL AS attached, ap.api_enabled, ap.api_auto_renew,
       ca.name AS ca_name, ca.status AS ca_status, ca.key_algorithm AS ca_key_algorithm,
       ca.not_after AS ca_not_after, ca.name_constraints AS ca_name_constraints,
       ca.chain_name_constraints AS ca_chain_name_constraints,
       pol.name AS policy_name, pol.document AS policy_document
FROM applications a
LEFT JOIN profiles p ON p.{profile_column} = $2
LEFT JOIN certificate_authorities ca ON ca.id = p.ca_id
LEFT JOIN policies pol ON pol.id = p.policy_id
LEFT JOIN application_profiles ap ON ap.application_id = a.id AND ap.profile_id = p.id
WHERE a.{app_column} = $1
"""  # noqa: S608 - names from literals in this module; values are parameters


_TARGET_SQL = {(a, p): _target_sql(a, p) for a in ("id", "slug") for p in ("id", "slug")}
"""The application, and the profile with its attachment to it, its CA and its policy: one
round trip. One statement per way of naming them, so each is planned on its unique index."""

_REQUEST_COLUMNS = columns(CertificateRequest)

SUBMIT_SQL = f"""
WITH request AS (
    {insert_sql(CertificateRequest, _REQUEST_COLUMNS)}
), command AS (
    {insert_sql(OutboxMessage, MESSAGE_COLUMNS, first=len(_REQUEST_COLUMNS) + 1)}
)
{insert_sql(AuditEvent, ENTRY_COLUMNS, first=len(_REQUEST_COLUMNS) + len(MESSAGE_COLUMNS) + 1)}
"""
"""The request, the issue command (outbox) and the audit entry: one statement, so they commit
together with no BEGIN/COMMIT round trips."""

_BY_IDEMPOTENCY_KEY_SQL = f"""
SELECT {select_list(_REQUEST_COLUMNS, "r")}, p.slug AS profile_slug
FROM certificate_requests r JOIN profiles p ON p.id = r.profile_id
WHERE r.application_id = $1 AND r.idempotency_key = $2
"""  # noqa: S608 - column names from the table model; values are parameters


async def submit(
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    body: CertificateRequestCreate,
    idempotency_key: str | None,
    now: datetime,
) -> Submitted:
    db = context.db
    target = await _target(context, audit.actor, app_ref, body.profile)
    fingerprint = body_fingerprint(body)
    if idempotency_key is not None:
        previous = await _by_idempotency_key(db, target, idempotency_key, fingerprint)
        if previous is not None:
            return previous
    profile = _usable_profile(target, body.profile)
    params = _params(body, target)
    template = checked_template(target, params, now)

    app_id: UUID = target["app_id"]
    request = new_request_row(
        id=uuid4(),
        kind=RequestKind.ISSUE,
        application_id=app_id,
        profile_id=target["profile_id"],
        params=params,
        now=now,
        requested_by=audit.actor.identity_id,
        idempotency_key=idempotency_key,
        body_fingerprint=fingerprint,
    )
    command = IssueCertificate(request_id=request["id"], application_id=app_id)
    outbox = message_row(
        context.subjects.cmd_issue, CloudEvent.wrap(command, source=_SOURCE), lease=DIRECT_LEASE
    )
    entry = audit.entry(
        resource_type="certificate_request",
        resource_id=request["id"],
        application_id=app_id,
        details={
            "profile": profile,
            "method": params.method.value,
            "common_name": template.subject.common_name,
            "sans": [s.value for s in template.sans][:20],
            "auto_renew_default": target["api_auto_renew"],
        },
        status_code=202,
    )
    try:
        await db.execute(
            SUBMIT_SQL,
            *values(request, _REQUEST_COLUMNS),
            *values(outbox, MESSAGE_COLUMNS),
            *values(entry, ENTRY_COLUMNS),
        )
    except asyncpg.UniqueViolationError:
        if idempotency_key is None:
            raise
        # A concurrent POST with the same key committed first: answer with its request.
        previous = await _by_idempotency_key(db, target, idempotency_key, fingerprint)
        if previous is None:
            raise
        return previous
    context.relay.publish_soon([outbox])  # now, not after the relay's next claim
    record = RequestRecord.of_row(request)
    return Submitted(record, app_id, target["app_slug"], profile, replayed=False)


def checked_template(
    target: Row | Mapping[str, Any], params: RequestParams, now: datetime
) -> CertificateTemplate:
    """The template a request resolves to, refused early (422 naming the caller's fields) when
    the profile's policy or the CA chain's name constraints refuse it: the checks the issuer
    applies again at signing. `target` is a request target row (`_target_sql`'s columns; the
    ACME directory's row has them too)."""
    ca = IssuingCA(
        target["ca_name"],
        KeyAlgorithm(target["ca_key_algorithm"]),
        target["ca_not_after"],
        chain_constraints(target["ca_name_constraints"], target["ca_chain_name_constraints"]),
    )
    template = resolve_template(
        params,
        ProfileDefaults.model_validate(target["defaults"]),
        ca,
        now,
    )
    policy = target["policy_name"]
    violations = evaluate(
        PolicyDocument.model_validate(target["policy_document"]), template, policy_name=policy
    )
    names = name_violations(template, ca.name_constraints)
    if violations or names:
        raise refusal(
            [*violations, *names],
            policy,
            ca_name=target["ca_name"] if names else None,
            field_of=lambda field: _request_field(field, params),
        )
    return template


async def _target(context: ApiContext, actor: Actor, app_ref: str, profile_ref: str) -> Row:
    """The application (if `actor` may operate it: else 404 or 403) with the profile's rows,
    from this replica's cache when it holds them (`access_cache`; the issuer checks it all
    again when it signs, so a change is never missed, at worst refused late)."""
    app_id = as_uuid(app_ref)
    if app_id is None and not is_reference(app_ref):
        raise NotFound.on_field("app", f"no application {app_ref!r}")
    profile_id = as_uuid(profile_ref)
    # a reference that names nothing (it may hold a NUL) never reaches the database
    profile_key: object = profile_id if profile_id or not is_reference(profile_ref) else profile_ref
    how = ("id" if app_id else "slug", "slug" if isinstance(profile_key, str) else "id")
    key = (*how, app_id or app_ref, profile_key)
    cache = context.access.targets
    generation = context.access.generation
    row = cache.get(key)
    if row is None:
        row = await context.db.fetchrow(_TARGET_SQL[how], app_id or app_ref, profile_key)
        if row is None:
            raise NotFound.on_field("app", f"no application {app_ref!r}")
        if row["profile_id"] is not None:  # misses are not kept (a new profile needs no event)
            cache.put(key, row, generation)
    check_access(actor, row["app_id"], row["app_slug"], app_ref, OPERATE_ROLES)
    return row


def _usable_profile(target: Row, ref: str) -> str:
    """The profile's slug, if it may issue for the application now (the rule the issuer checks
    again when it signs); else a 422."""
    slug = target["profile_slug"]
    if slug is None:
        raise Unprocessable.on_field("profile", f"no profile {ref!r}")
    enrollment = Enrollment(
        application=target["app_slug"],
        profile=slug,
        attached=target["attached"],
        api_enabled=bool(target["api_enabled"]),
        ca_name=target["ca_name"],
        ca_status=target["ca_status"],
    )
    check_enrollment(enrollment, RequestKind.ISSUE)
    return str(slug)


async def _by_idempotency_key(
    db: Database, target: Row, key: str, fingerprint: str
) -> Submitted | None:
    row = await db.fetchrow(_BY_IDEMPOTENCY_KEY_SQL, target["app_id"], key)
    if row is None:
        return None
    if row["body_fingerprint"] != fingerprint:
        raise Unprocessable.on_field(
            "Idempotency-Key", "this key was used with a different request body"
        )
    record = RequestRecord.of_row(row)
    return Submitted(record, target["app_id"], target["app_slug"], row["profile_slug"], True)


def _params(body: CertificateRequestCreate, target: Row) -> RequestParams:
    common = {
        "signature_algorithm": body.signature_algorithm,
        "ttl": body.ttl,
        "not_before": body.not_before,
        "not_after": body.not_after,
        "key_usages": body.key_usages,
        "extended_key_usages": body.extended_key_usages,
        "metadata": body.metadata,
    }
    if body.method is RequestMethod.CSR:
        assert body.csr is not None
        return csr_params(parse_csr(body.csr), body.csr, target, **common)
    return RequestParams(
        method=RequestMethod.MANAGED,
        subject=body.subject(),
        sans=body.sans,
        key_algorithm=body.key_algorithm,
        **common,
    )


def csr_params(
    csr: ParsedCsr, csr_pem: str, target: Row | Mapping[str, Any], **common: Any
) -> RequestParams:
    """The parameters of a request by CSR (the REST API's, and ACME's finalize), refusing a
    CSR that marks critical what the profile does not add, or that has subject attributes
    Certforge does not issue."""
    if csr.critical_extension_oids:
        check_csr_extensions(
            csr.critical_extension_oids,
            ProfileExtensions.model_validate(target["extensions"]),
            target["profile_slug"],
        )
    if csr.unsupported_subject_oids:
        raise Unprocessable.on_field(
            "csr",
            "the CSR subject has attributes Certforge does not issue: "
            + ", ".join(csr.unsupported_subject_oids),
        )
    return RequestParams(
        method=RequestMethod.CSR,
        subject=csr.subject,
        sans=csr.sans,
        key_algorithm=csr.key_algorithm,
        csr=csr_pem,
        **common,
    )


def _request_field(template_field: str, params: RequestParams) -> str:
    """A template field (`subject.common_name`) as the request names it (`common_name`); the
    validity is `ttl` unless the caller gave `not_after`."""
    renamed = {
        "signature_hash": "signature_algorithm",
        "not_after": "not_after" if params.not_after is not None else "ttl",
    }
    name = renamed.get(template_field, template_field)
    if name.startswith("subject."):
        name = name.removeprefix("subject.")
    if params.method is RequestMethod.CSR and (
        name.startswith("sans")
        or name
        in {
            "common_name",
            "organization",
            "organizational_unit",
            "country",
            "state",
            "locality",
            "key_algorithm",
        }
    ):
        return f"csr.{name}"
    return name


async def get(session: AsyncSession, actor: Actor, app_ref: str, request_id: UUID) -> Submitted:
    app = await application_for(session, actor, app_ref, READ_ROLES)
    row = (
        await session.exec(
            select(CertificateRequest, Profile)
            .join(Profile, col(Profile.id) == col(CertificateRequest.profile_id))
            .where(CertificateRequest.id == request_id, CertificateRequest.application_id == app.id)
        )
    ).first()
    if row is None:
        raise NotFound.on_field(
            "request_id", f"no certificate request {request_id} in {app.slug!r}"
        )
    request, profile = row
    return Submitted(RequestRecord.of(request), app.id, app.slug, profile.slug, replayed=True)


@dataclass(frozen=True)
class RequestFilter:
    status: RequestStatus | None = None
    profile: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 50
    cursor: str | None = None


async def search(
    session: AsyncSession, actor: Actor, app_ref: str, f: RequestFilter
) -> tuple[Application, list[tuple[CertificateRequest, Profile]], str | None]:
    app = await application_for(session, actor, app_ref, READ_ROLES)
    query = (
        select(CertificateRequest, Profile)
        .join(Profile, col(Profile.id) == col(CertificateRequest.profile_id))
        .where(CertificateRequest.application_id == app.id)
    )
    if f.status is not None:
        query = query.where(CertificateRequest.status == f.status.value)
    if f.profile is not None:
        profile: Profile = await by_slug_or_id(session, Profile, f.profile, "profile", "profile")
        query = query.where(CertificateRequest.profile_id == profile.id)
    if f.created_after is not None:
        query = query.where(col(CertificateRequest.created_at) >= f.created_after)
    if f.created_before is not None:
        query = query.where(col(CertificateRequest.created_at) < f.created_before)
    if f.cursor is not None:
        created_at, last_id = decode_cursor(f.cursor)
        try:
            last = UUID(last_id)
        except ValueError:
            raise InvalidInput.on_field("cursor", "not a cursor returned by this API") from None
        query = query.where(
            (col(CertificateRequest.created_at) < created_at)
            | (
                (col(CertificateRequest.created_at) == created_at)
                & (col(CertificateRequest.id) < last)
            )
        )
    query = query.order_by(
        col(CertificateRequest.created_at).desc(), col(CertificateRequest.id).desc()
    ).limit(f.limit + 1)
    rows = list(await session.exec(query))
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    cursor = encode_cursor(rows[-1][0].created_at, rows[-1][0].id) if more and rows else None
    return app, rows, cursor
