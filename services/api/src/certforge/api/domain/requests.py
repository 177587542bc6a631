"""Certificate requests: validate early, then write the request, its audit entry and the issue
command (outbox) in one transaction; the issuer does the rest.

Everything a caller can get wrong is refused here with a 422 naming the field, before anything
is stored; the issuer checks it all again, authoritatively, when it signs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import orjson
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain.common import (
    OPERATE_ROLES,
    READ_ROLES,
    application_for,
    as_uuid,
    by_slug_or_id,
    is_reference,
)
from certforge.api.schemas.certificates import CertificateRequestCreate
from certforge.api.schemas.common import decode_cursor, encode_cursor
from certforge.common.contracts.commands import IssueCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.crypto.csr import parse_csr
from certforge.common.db.tables import (
    Application,
    CertificateAuthority,
    CertificateRequest,
    Policy,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import CAStatus, KeyAlgorithm, RequestMethod, RequestStatus
from certforge.common.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    PolicyViolation,
    Unprocessable,
)
from certforge.common.issuance import IssuingCA, ProfileDefaults, RequestParams, resolve_template
from certforge.common.outbox import enqueue
from certforge.common.policy import PolicyDocument, evaluate

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


@dataclass(frozen=True)
class Submitted:
    request: CertificateRequest
    application: Application
    profile: Profile
    replayed: bool


async def submit(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    body: CertificateRequestCreate,
    idempotency_key: str | None,
    now: datetime,
) -> Submitted:
    app = await application_for(session, audit.actor, app_ref, OPERATE_ROLES)
    app_id = app.id  # still readable after a rollback expires `app`
    fingerprint = body_fingerprint(body)
    if idempotency_key is not None:
        previous = await _by_idempotency_key(session, app_id, idempotency_key, fingerprint)
        if previous is not None:
            return previous
    profile, attachment, ca, policy = await _usable_profile(session, app, body.profile)
    if ca.status != CAStatus.ACTIVE:
        raise Unprocessable.on_field("profile", f"the CA of profile {profile.slug!r} is disabled")
    params = _params(body)
    template = resolve_template(
        params,
        ProfileDefaults.model_validate(profile.defaults),
        IssuingCA(ca.name, KeyAlgorithm(ca.key_algorithm), ca.not_after),
        now,
    )
    violations = evaluate(
        PolicyDocument.model_validate(policy.document), template, policy_name=policy.name
    )
    if violations:
        errors = [FieldError(_request_field(v.field, params), v.message) for v in violations]
        raise PolicyViolation(
            detail=f"{len(errors)} violation(s) of policy {policy.name!r}: "
            + "; ".join(e.message for e in errors),
            errors=errors,
        )

    request = CertificateRequest(
        application_id=app.id,
        profile_id=profile.id,
        method=params.method.value,
        status=RequestStatus.PENDING.value,
        params=params.model_dump(mode="json", exclude_none=True),
        idempotency_key=idempotency_key,
        body_fingerprint=fingerprint,
        requested_by=audit.actor.identity_id,
        created_at=now,
    )
    session.add(request)
    command = IssueCertificate(request_id=request.id, application_id=app.id)
    enqueue(session, context.subjects.cmd_issue, CloudEvent.wrap(command, source=_SOURCE))
    audit.record(
        session,
        resource_type="certificate_request",
        resource_id=request.id,
        application_id=app.id,
        details={
            "profile": profile.slug,
            "method": params.method.value,
            "common_name": template.subject.common_name,
            "sans": [s.value for s in template.sans][:20],
            "auto_renew_default": attachment.api_auto_renew,
        },
        status_code=202,
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if idempotency_key is None:
            raise
        # A concurrent POST with the same key committed first: answer with its request.
        previous = await _by_idempotency_key(session, app_id, idempotency_key, fingerprint)
        if previous is None:
            raise
        return previous
    context.relay.wake()
    return Submitted(request, app, profile, replayed=False)


async def _by_idempotency_key(
    session: AsyncSession, application_id: UUID, key: str, fingerprint: str
) -> Submitted | None:
    row = (
        await session.exec(
            select(CertificateRequest, Application, Profile)
            .join(Application, col(Application.id) == col(CertificateRequest.application_id))
            .join(Profile, col(Profile.id) == col(CertificateRequest.profile_id))
            .where(
                CertificateRequest.application_id == application_id,
                CertificateRequest.idempotency_key == key,
            )
        )
    ).first()
    if row is None:
        return None
    request, app, profile = row
    if request.body_fingerprint != fingerprint:
        raise Unprocessable.on_field(
            "Idempotency-Key", "this key was used with a different request body"
        )
    return Submitted(request, app, profile, replayed=True)


async def _usable_profile(
    session: AsyncSession, app: Application, ref: str
) -> tuple[Profile, ProfileAttachment, CertificateAuthority, Policy]:
    """The profile `ref` with its attachment to `app`, its CA and its policy: one round trip."""
    if not is_reference(ref):
        raise Unprocessable.on_field("profile", f"no profile {ref!r}")
    profile_id = as_uuid(ref)
    match = col(Profile.id) == profile_id if profile_id else col(Profile.slug) == ref
    row = (
        await session.exec(
            select(Profile, ProfileAttachment, CertificateAuthority, Policy)
            .join(CertificateAuthority, col(CertificateAuthority.id) == col(Profile.ca_id))
            .join(Policy, col(Policy.id) == col(Profile.policy_id))
            .outerjoin(
                ProfileAttachment,
                (col(ProfileAttachment.profile_id) == col(Profile.id))
                & (col(ProfileAttachment.application_id) == app.id),
            )
            .where(match)
        )
    ).first()
    if row is None:
        raise Unprocessable.on_field("profile", f"no profile {ref!r}")
    profile, attachment, ca, policy = row
    if attachment is None:
        raise Unprocessable.on_field(
            "profile", f"profile {profile.slug!r} is not attached to application {app.slug!r}"
        )
    if not attachment.api_enabled:
        raise Unprocessable.on_field(
            "profile", f"API enrollment is disabled for profile {profile.slug!r} in {app.slug!r}"
        )
    return profile, attachment, ca, policy


def _params(body: CertificateRequestCreate) -> RequestParams:
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
        csr = parse_csr(body.csr)
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
            csr=body.csr,
            **common,
        )
    return RequestParams(
        method=RequestMethod.MANAGED,
        subject=body.subject(),
        sans=body.sans,
        key_algorithm=body.key_algorithm,
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
    return Submitted(request, app, profile, replayed=True)


async def reload(session: AsyncSession, submitted: Submitted) -> Submitted:
    await session.refresh(submitted.request)
    return submitted


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
