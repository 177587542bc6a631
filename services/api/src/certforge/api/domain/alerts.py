"""Alert rules of an application: validated by `certforge.common.alerts` (no delivery code
here), channel secrets sealed under the leaf key ring and bound to the rule, deliveries read
back, and tests asked of the notifier over core-NATS request/reply.

Whether an email channel can be delivered depends on the notifier's SMTP settings, which only
the notifier holds (with the SMTP password): the api asks it (`rpc.alert.channels`) when a rule
has an email channel, rather than sharing a setting that could disagree with the notifier's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import sqlalchemy as sa
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import TypeAdapter
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain.common import ADMIN_ROLES, READ_ROLES, application_for, commit
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.schemas.alerts import (
    AlertCreate,
    AlertDeliveryPublic,
    AlertPublic,
    AlertTestResult,
    AlertUpdate,
)
from certforge.api.schemas.common import Page, decode_cursor, encode_cursor
from certforge.common.alerts import (
    SECRET_FIELDS,
    AlertEvent,
    AlertFilters,
    EmailChannel,
    parse_channels,
    rule_errors,
    secrets_aad,
    split_channel,
)
from certforge.common.contracts.rpc import (
    ALERT_TEST,
    NOTIFIER_CHANNELS,
    AlertTestReply,
    NotifierChannels,
    NotifierChannelsReply,
    TestAlert,
)
from certforge.common.db.tables import (
    AlertDelivery,
    AlertRule,
    Application,
    Profile,
    ProfileAttachment,
)
from certforge.common.durations import Duration
from certforge.common.errors import FieldError, NotFound, Unavailable, Unprocessable

_DURATION: TypeAdapter[Any] = TypeAdapter(Duration)
CONFIGURED = {"configured": True}


def public(rule: AlertRule, app: Application) -> AlertPublic:
    channels = []
    for stored in rule.channels:
        shown = dict(stored)
        for name in SECRET_FIELDS[stored["type"]]:
            shown[name] = CONFIGURED
        channels.append(shown)
    return AlertPublic(
        id=rule.id,
        application=app.slug,
        name=rule.name,
        event=AlertEvent(rule.event),
        before=_DURATION.validate_python(rule.before_seconds) if rule.before_seconds else None,
        filters=AlertFilters.model_validate(rule.filters),
        channels=channels,
        enabled=rule.enabled,
        digest=rule.digest,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def _get(session: AsyncSession, app: Application, alert_id: UUID) -> AlertRule:
    rule = await session.get(AlertRule, alert_id)
    if rule is None or rule.application_id != app.id:
        raise NotFound.on_field("alert_id", f"no alert {alert_id} in {app.slug!r}")
    return rule


async def _profile_errors(
    session: AsyncSession, app: Application, filters: AlertFilters
) -> list[FieldError]:
    if not filters.profiles:
        return []
    attached = set(
        (
            await session.exec(
                select(Profile.slug)
                .join(ProfileAttachment, col(ProfileAttachment.profile_id) == col(Profile.id))
                .where(
                    ProfileAttachment.application_id == app.id,
                    col(Profile.slug).in_(filters.profiles),
                )
            )
        ).all()
    )
    return [
        FieldError(f"filters.profiles.{i}", f"no profile {slug!r} is attached to {app.slug!r}")
        for i, slug in enumerate(filters.profiles)
        if slug not in attached
    ]


async def _smtp_configured(context: ApiContext) -> bool:
    try:
        message = await context.nats.request(
            context.subjects.rpc(NOTIFIER_CHANNELS),
            NotifierChannels().model_dump_json().encode(),
            timeout=context.settings.issuer_timeout_seconds,
        )
    except NoRespondersError as exc:
        raise Unavailable(
            "the notifier service is not running, so it cannot say whether email can be "
            "delivered; try again shortly"
        ) from exc
    except NatsTimeoutError as exc:
        raise Unavailable("the notifier did not answer in time") from exc
    return "email" in NotifierChannelsReply.model_validate_json(message.data).types


async def _validated(
    session: AsyncSession,
    context: ApiContext,
    app: Application,
    *,
    event: AlertEvent,
    before: Any,
    filters: AlertFilters,
    raw_channels: list[dict[str, Any]] | None,
    existing: dict[str, dict[str, Any]],
) -> list[tuple[str, Any]]:
    """[(channel id, channel model)], or `Unprocessable` naming every field at fault. With
    `raw_channels` None (a PATCH that leaves them) the channels are not judged again: disabling
    an alert must work even if, say, SMTP was unconfigured since."""
    if raw_channels is None:
        errors = rule_errors(event, before, filters, [], development=True, smtp_configured=None)
        errors += await _profile_errors(session, app, filters)
        if errors:
            raise Unprocessable(detail=_detail(errors), errors=errors)
        return []
    ids: list[str] = []
    bodies: list[dict[str, Any]] = []
    errors = []
    for index, raw in enumerate(raw_channels):
        body = dict(raw)
        given_id = body.pop("id", None)
        if given_id is not None:
            if str(given_id) in ids:
                errors.append(FieldError(f"channels.{index}.id", "the same channel twice"))
            elif str(given_id) not in existing:
                errors.append(
                    FieldError(f"channels.{index}.id", f"no channel {given_id} in this alert")
                )
            else:
                body = {**existing[str(given_id)], **body}
        ids.append(str(given_id) if given_id is not None else str(uuid4()))
        bodies.append(body)
    channels, channel_errors = parse_channels(bodies)
    errors += channel_errors
    if not channel_errors:
        smtp = None
        if any(isinstance(c, EmailChannel) for c in channels):
            smtp = await _smtp_configured(context)
        errors += rule_errors(
            event,
            before,
            filters,
            channels,
            development=context.settings.is_development,
            smtp_configured=smtp,
        )
    else:
        errors += rule_errors(event, before, filters, [], development=True, smtp_configured=None)
    errors += await _profile_errors(session, app, filters)
    if errors:
        raise Unprocessable(detail=_detail(errors), errors=errors)
    return list(zip(ids, channels, strict=True))


def _detail(errors: list[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" for e in errors[:5])


def _store_channels(context: ApiContext, rule: AlertRule, channels: list[tuple[str, Any]]) -> None:
    stored: list[dict[str, Any]] = []
    secrets: dict[str, dict[str, str]] = {}
    for channel_id, channel in channels:
        settings, sealed = split_channel(channel)
        stored.append({"id": channel_id, **settings})
        if sealed:
            secrets[channel_id] = sealed
    rule.channels = stored
    if secrets:
        rule.encrypted_secrets = context.leaf_keys.encrypt(
            orjson.dumps(secrets), secrets_aad(rule.id)
        )
        rule.secrets_kek_id = context.leaf_keys.active_kid
    else:
        rule.encrypted_secrets = None
        rule.secrets_kek_id = None


def _stored_secrets(context: ApiContext, rule: AlertRule) -> dict[str, dict[str, str]]:
    """Each existing channel's secrets by id (channels without secrets map to `{}`)."""
    opened: dict[str, dict[str, str]] = {}
    if rule.encrypted_secrets is not None:
        opened = orjson.loads(
            context.leaf_keys.decrypt(rule.encrypted_secrets, secrets_aad(rule.id))
        )
    return {c["id"]: opened.get(c["id"], {}) for c in rule.channels}


def _seconds(before: Any) -> int | None:
    return int(before.total_seconds()) if before is not None else None


async def create(
    session: AsyncSession, context: ApiContext, audit: AuditScope, app_ref: str, body: AlertCreate
) -> AlertPublic:
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    duplicate = ("name", f"an alert named {body.name!r} exists in {app.slug!r}")
    channels = await _validated(
        session,
        context,
        app,
        event=body.event,
        before=body.before,
        filters=body.filters,
        raw_channels=body.channels,
        existing={},
    )
    rule = AlertRule(
        application_id=app.id,
        name=body.name,
        event=body.event.value,
        before_seconds=_seconds(body.before),
        filters=body.filters.model_dump(mode="json"),
        enabled=body.enabled,
        digest=body.digest,
    )
    _store_channels(context, rule, channels)
    session.add(rule)
    audit.record(
        session,
        resource_type="alert",
        resource_id=rule.id,
        application_id=app.id,
        details={
            "name": rule.name,
            "event": rule.event,
            "channels": [c["type"] for c in rule.channels],
        },
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(rule, app)


async def list_all(
    session: AsyncSession, actor: Actor, app_ref: str, page: PageRequest
) -> Page[AlertPublic]:
    app = await application_for(session, actor, app_ref, READ_ROLES)
    rows, cursor = await keyset_page(
        session,
        select(AlertRule).where(AlertRule.application_id == app.id),
        col(AlertRule.created_at),
        col(AlertRule.id),
        page,
        lambda r: (r.created_at, r.id),
    )
    return Page(items=[public(r, app) for r in rows], next_cursor=cursor)


async def get(session: AsyncSession, actor: Actor, app_ref: str, alert_id: UUID) -> AlertPublic:
    app = await application_for(session, actor, app_ref, READ_ROLES)
    return public(await _get(session, app, alert_id), app)


async def update(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    alert_id: UUID,
    body: AlertUpdate,
) -> AlertPublic:
    """Fields given replace the stored ones; the whole rule is validated again, so changing
    the event to one without a window needs `before` removed (`"before": null`)."""
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    rule = await _get(session, app, alert_id)
    given = body.model_fields_set
    event = body.event if body.event is not None else AlertEvent(rule.event)
    before: Any = (
        body.before
        if "before" in given
        else (_DURATION.validate_python(rule.before_seconds) if rule.before_seconds else None)
    )
    filters = (
        body.filters if body.filters is not None else AlertFilters.model_validate(rule.filters)
    )
    kept = _stored_secrets(context, rule) if body.channels is not None else {}
    channels = await _validated(
        session,
        context,
        app,
        event=event,
        before=before,
        filters=filters,
        raw_channels=body.channels,
        existing={k: {**_settings_of(rule, k), **v} for k, v in kept.items()},
    )
    if body.channels is not None:
        _store_channels(context, rule, channels)
    if body.name is not None:
        rule.name = body.name
    rule.event = event.value
    rule.before_seconds = _seconds(before)
    rule.filters = filters.model_dump(mode="json")
    if body.enabled is not None:
        rule.enabled = body.enabled
    if body.digest is not None:
        rule.digest = body.digest
    rule.updated_at = datetime.now(UTC)
    session.add(rule)
    audit.record(
        session,
        resource_type="alert",
        resource_id=rule.id,
        application_id=app.id,
        details={"changed": sorted(given)},
    )
    await commit(session, duplicate=("name", f"an alert named {body.name!r} exists"))
    return public(rule, app)


def _settings_of(rule: AlertRule, channel_id: str) -> dict[str, Any]:
    """A stored channel's settings without its id: a PATCH may send only the id and what
    changes."""
    stored: dict[str, Any] = next((c for c in rule.channels if c["id"] == channel_id), {})
    return {k: v for k, v in stored.items() if k != "id"}


async def delete(session: AsyncSession, audit: AuditScope, app_ref: str, alert_id: UUID) -> None:
    """Deleting an alert drops its pending deliveries and its history with it (cascade)."""
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    rule = await _get(session, app, alert_id)
    await session.delete(rule)
    audit.record(
        session,
        resource_type="alert",
        resource_id=rule.id,
        application_id=app.id,
        details={"name": rule.name},
        status_code=204,
    )
    await commit(session)


async def deliveries(
    session: AsyncSession,
    actor: Actor,
    app_ref: str,
    alert_id: UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[AlertDeliveryPublic]:
    """Newest first, `limit` per page."""
    app = await application_for(session, actor, app_ref, READ_ROLES)
    rule = await _get(session, app, alert_id)
    query = select(AlertDelivery).where(AlertDelivery.rule_id == rule.id)
    if status is not None:
        query = query.where(AlertDelivery.status == status)
    if cursor is not None:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(
            sa.tuple_(col(AlertDelivery.created_at), col(AlertDelivery.id))
            < sa.tuple_(sa.literal(created_at), sa.literal(UUID(last_id)))
        )
    rows = list(
        await session.exec(
            query.order_by(
                col(AlertDelivery.created_at).desc(), col(AlertDelivery.id).desc()
            ).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        AlertDeliveryPublic(
            id=r.id,
            subject_kind=r.subject_kind,
            subject_id=r.subject_id,
            window=r.window_key,
            channel_id=r.channel_id,
            channel_type=r.channel_type,
            action=r.action,
            status=r.status,
            attempts=r.attempts,
            last_error=r.last_error,
            next_attempt_at=r.next_attempt_at if r.status == "pending" else None,
            delivered_at=r.delivered_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page(items=items, next_cursor=next_cursor)


async def test(
    session: AsyncSession, context: ApiContext, audit: AuditScope, app_ref: str, alert_id: UUID
) -> AlertTestResult:
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    await _get(session, app, alert_id)
    audit.record(session, resource_type="alert", resource_id=alert_id, application_id=app.id)
    await commit(session)  # the audit entry; the snapshot is released while the notifier works
    try:
        message = await context.nats.request(
            context.subjects.rpc(ALERT_TEST),
            TestAlert(alert_id=alert_id).model_dump_json().encode(),
            timeout=context.settings.issuer_timeout_seconds + 60,
        )
    except NoRespondersError as exc:
        raise Unavailable("the notifier service is not running; try again shortly") from exc
    except NatsTimeoutError as exc:
        raise Unavailable("the notifier did not answer in time") from exc
    reply = AlertTestReply.model_validate_json(message.data)
    return AlertTestResult(
        ok=reply.ok,
        detail=reply.detail,
        channels=[c.model_dump(mode="json") for c in reply.channels],
    )
