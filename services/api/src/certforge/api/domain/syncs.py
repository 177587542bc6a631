"""Sync destinations of an application: configuration (validated by the destination's models
and rules in `certforge.common.destinations`, without any SDK), write-only credentials
encrypted at rest, on-demand runs, tests and statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain.common import ADMIN_ROLES, READ_ROLES, application_for, commit
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.schemas.common import Page
from certforge.api.schemas.syncs import (
    SyncCreate,
    SyncPublic,
    SyncRunResult,
    SyncStatePublic,
    SyncTestResult,
    SyncUpdate,
)
from certforge.common.contracts.commands import SyncCertificate
from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.contracts.rpc import SyncTestReply, TestSync
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.tables import Application, Certificate, SyncDestination, SyncState
from certforge.common.destinations.catalog import validate_configuration
from certforge.common.destinations.options import SyncOptions, SyncSelector
from certforge.common.domain import CertificateStatus
from certforge.common.errors import Conflict, NotFound, Unavailable, Unprocessable
from certforge.common.outbox import enqueue_many

SOURCE = "/certforge/api"


def public(sync: SyncDestination, app: Application) -> SyncPublic:
    return SyncPublic(
        id=sync.id,
        application=app.slug,
        name=sync.name,
        kind=sync.kind,
        settings=sync.settings,
        has_credentials=sync.encrypted_credentials is not None,
        selector=SyncSelector.model_validate(sync.selector),
        options=SyncOptions.model_validate(sync.options),
        enabled=sync.enabled,
        created_at=sync.created_at,
        updated_at=sync.updated_at,
    )


def _validated(
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    development: bool,
    allow_ambient: bool,
) -> dict[str, Any]:
    """The settings as their model normalises them; `Unprocessable` naming each field at
    fault otherwise (the destination's own rules, such as https-only webhooks, included)."""
    configuration = validate_configuration(
        kind, settings, credentials, development=development, allow_ambient=allow_ambient
    )
    return configuration.settings.model_dump(mode="json")


async def _get(session: AsyncSession, app: Application, sync_id: UUID) -> SyncDestination:
    sync = await session.get(SyncDestination, sync_id)
    if sync is None or sync.application_id != app.id:
        raise NotFound.on_field("sync_id", f"no sync {sync_id} in {app.slug!r}")
    return sync


def _encrypt(context: ApiContext, sync_id: UUID, credentials: dict[str, Any]) -> bytes:
    return context.leaf_keys.encrypt(orjson.dumps(credentials), sync_id.bytes)


async def create(
    session: AsyncSession, context: ApiContext, audit: AuditScope, app_ref: str, body: SyncCreate
) -> SyncPublic:
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    duplicate = ("name", f"a sync named {body.name!r} exists in {app.slug!r}")
    existing = await session.exec(
        select(SyncDestination).where(
            SyncDestination.application_id == app.id, SyncDestination.name == body.name
        )
    )
    if existing.first() is not None:
        raise Conflict.on_field(*duplicate)
    settings = _validated(
        body.kind,
        body.settings,
        body.credentials,
        context.settings.is_development,
        context.settings.sync_ambient_credentials,
    )
    sync = SyncDestination(
        application_id=app.id,
        name=body.name,
        kind=body.kind,
        settings=settings,
        selector=body.selector.model_dump(mode="json"),
        options=body.options.model_dump(mode="json"),
        enabled=body.enabled,
    )
    if body.credentials:
        sync.encrypted_credentials = _encrypt(context, sync.id, body.credentials)
        sync.credentials_kek_id = context.leaf_keys.active_kid
    session.add(sync)
    audit.record(
        session,
        resource_type="sync",
        resource_id=sync.id,
        application_id=app.id,
        details={"name": sync.name, "kind": sync.kind},
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(sync, app)


async def list_all(
    session: AsyncSession, actor: Actor, app_ref: str, page: PageRequest
) -> Page[SyncPublic]:
    app = await application_for(session, actor, app_ref, READ_ROLES)
    rows, cursor = await keyset_page(
        session,
        select(SyncDestination).where(SyncDestination.application_id == app.id),
        col(SyncDestination.created_at),
        col(SyncDestination.id),
        page,
        lambda s: (s.created_at, s.id),
    )
    return Page(items=[public(s, app) for s in rows], next_cursor=cursor)


async def get(session: AsyncSession, actor: Actor, app_ref: str, sync_id: UUID) -> SyncPublic:
    app = await application_for(session, actor, app_ref, READ_ROLES)
    return public(await _get(session, app, sync_id), app)


async def update(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    sync_id: UUID,
    body: SyncUpdate,
) -> SyncPublic:
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    sync = await _get(session, app, sync_id)
    changes = body.model_dump(exclude_unset=True)
    if body.settings is not None or body.credentials is not None:
        credentials = body.credentials
        if credentials is None and sync.encrypted_credentials is not None:
            credentials = orjson.loads(
                context.leaf_keys.decrypt(sync.encrypted_credentials, sync.id.bytes)
            )
        settings = body.settings if body.settings is not None else sync.settings
        sync.settings = _validated(
            sync.kind,
            settings,
            credentials,
            context.settings.is_development,
            context.settings.sync_ambient_credentials,
        )
        if body.credentials is not None:
            sync.encrypted_credentials = _encrypt(context, sync.id, body.credentials)
            sync.credentials_kek_id = context.leaf_keys.active_kid
    if body.name is not None:
        sync.name = body.name
    if body.selector is not None:
        sync.selector = body.selector.model_dump(mode="json")
    if body.options is not None:
        sync.options = body.options.model_dump(mode="json")
    if body.enabled is not None:
        sync.enabled = body.enabled
    sync.updated_at = datetime.now(UTC)
    session.add(sync)
    audit.record(
        session,
        resource_type="sync",
        resource_id=sync.id,
        application_id=app.id,
        details={"changed": sorted(changes)},
    )
    await commit(session, duplicate=("name", f"a sync named {body.name!r} exists"))
    return public(sync, app)


async def delete(session: AsyncSession, audit: AuditScope, app_ref: str, sync_id: UUID) -> None:
    """Deleting a sync stops pushes; what it pushed stays at the destination."""
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    sync = await _get(session, app, sync_id)
    await session.delete(sync)
    audit.record(
        session,
        resource_type="sync",
        resource_id=sync.id,
        application_id=app.id,
        details={"name": sync.name},
        status_code=204,
    )
    await commit(session)


async def run(
    session: AsyncSession, context: ApiContext, audit: AuditScope, app_ref: str, sync_id: UUID
) -> SyncRunResult:
    """Queue a push of every matching active certificate (e.g. right after creating a sync)."""
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    sync = await _get(session, app, sync_id)
    if not sync.enabled:
        raise Unprocessable.on_field("sync_id", "the sync is disabled")
    queued = await queue_pushes(session, context.subjects, sync, reason="run")
    audit.record(
        session,
        resource_type="sync",
        resource_id=sync.id,
        application_id=app.id,
        details={"run": queued},
    )
    await commit(session)
    context.relay.wake()
    return SyncRunResult(queued=queued)


async def queue_pushes(
    session: AsyncSession, subjects: Subjects, sync: SyncDestination, reason: str
) -> int:
    """Queue (in the session's transaction) a push of every active certificate of the sync's
    application that its selector matches; return how many."""
    selector = SyncSelector.model_validate(sync.selector)
    certificates = await session.exec(
        select(Certificate).where(
            Certificate.application_id == sync.application_id,
            Certificate.status == CertificateStatus.ACTIVE,
        )
    )
    tasks: list[tuple[str, CloudEvent[MessageData]]] = [
        (
            subjects.sync_task,
            CloudEvent.wrap(
                SyncCertificate(
                    sync_id=sync.id,
                    lineage_id=c.lineage_id or c.id,
                    certificate_id=c.id,
                    application_id=sync.application_id,
                    action="push",
                    reason=reason,
                ),
                source=SOURCE,
            ),
        )
        for c in certificates
        if selector.matches(c.profile_id, c.tags)
    ]
    await enqueue_many(session, tasks)
    return len(tasks)


async def test(
    session: AsyncSession, context: ApiContext, audit: AuditScope, app_ref: str, sync_id: UUID
) -> SyncTestResult:
    app = await application_for(session, audit.actor, app_ref, ADMIN_ROLES)
    await _get(session, app, sync_id)
    await session.rollback()  # release the snapshot while the syncer works (expires the rows)
    try:
        message = await context.nats.request(
            context.subjects.rpc_sync_test,
            TestSync(sync_id=sync_id).model_dump_json().encode(),
            timeout=context.settings.issuer_timeout_seconds + 60,
        )
    except NoRespondersError as exc:
        raise Unavailable("the syncer service is not running; try again shortly") from exc
    except NatsTimeoutError as exc:
        raise Unavailable("the syncer did not answer in time") from exc
    reply = SyncTestReply.model_validate_json(message.data)
    return SyncTestResult(ok=reply.ok, detail=reply.detail)


async def states(
    session: AsyncSession, actor: Actor, app_ref: str, sync_id: UUID, page: PageRequest
) -> Page[SyncStatePublic]:
    """Newest lineage first (by when this destination first saw it, `created_at`: an order
    that a retry, which moves `updated_at`, does not reshuffle under a client's feet)."""
    app = await application_for(session, actor, app_ref, READ_ROLES)
    sync = await _get(session, app, sync_id)
    rows, cursor = await keyset_page(
        session,
        select(SyncState).where(SyncState.sync_id == sync.id),
        col(SyncState.created_at),
        col(SyncState.lineage_id),
        page,
        lambda s: (s.created_at, s.lineage_id),
    )
    items = [SyncStatePublic.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, next_cursor=cursor)
