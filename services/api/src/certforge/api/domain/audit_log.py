"""Reading the audit log: product admins see everything; application admins and auditors see
their applications' entries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.auth import Actor
from certforge.api.domain.common import application_for
from certforge.api.schemas.audit import (
    AuditChainVerification,
    AuditEventPublic,
    ChainBreak,
    ChainHead,
)
from certforge.api.schemas.common import Page
from certforge.common.audit_chain import Verifier
from certforge.common.audit_chain_store import links_page, unsealed
from certforge.common.db.pool import Database
from certforge.common.db.tables import AuditEvent
from certforge.common.domain import Role
from certforge.common.errors import Forbidden, InvalidInput

_AUDIT_READERS = frozenset({Role.APPLICATION_ADMIN, Role.AUDITOR})
_CURSOR = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class AuditFilter:
    application: str | None = None
    actor_id: UUID | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    cursor: str | None = None


async def search(session: AsyncSession, actor: Actor, f: AuditFilter) -> Page[AuditEventPublic]:
    query = select(AuditEvent)
    if f.application is not None:
        app = await application_for(session, actor, f.application, _AUDIT_READERS)
        query = query.where(AuditEvent.application_id == app.id)
    elif not actor.is_product_admin:
        readable = [a for a, role in actor.roles.items() if role in _AUDIT_READERS]
        if not readable:
            raise Forbidden(
                "reading the audit log needs product-admin, or application-admin or "
                "auditor of an application"
            )
        query = query.where(col(AuditEvent.application_id).in_(readable))
    for name, text in (
        ("action", f.action),
        ("resource_type", f.resource_type),
        ("resource_id", f.resource_id),
    ):
        if text is not None and "\x00" in text:
            raise InvalidInput.on_field(name, "must not contain NUL characters")
    for column, value in (
        (AuditEvent.actor_id, f.actor_id),
        (AuditEvent.action, f.action),
        (AuditEvent.resource_type, f.resource_type),
        (AuditEvent.resource_id, f.resource_id),
        (AuditEvent.outcome, f.outcome),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    if f.since is not None:
        query = query.where(col(AuditEvent.occurred_at) >= f.since)
    if f.until is not None:
        query = query.where(col(AuditEvent.occurred_at) < f.until)
    if f.cursor is not None:
        # Audit ids are positive BIGINTs: at most 19 ASCII digits (`isdigit` also takes `²`).
        if not _CURSOR.fullmatch(f.cursor) or int(f.cursor) >= 2**63:
            raise InvalidInput.on_field("cursor", "not a cursor returned by this API")
        query = query.where(col(AuditEvent.id) < int(f.cursor))
    rows = list(await session.exec(query.order_by(col(AuditEvent.id).desc()).limit(f.limit + 1)))
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    return Page[AuditEventPublic](
        items=[AuditEventPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=str(rows[-1].id) if more and rows else None,
    )


_PAGE = 5_000
_SEAL_GRACE = timedelta(minutes=1)


async def verify_chain(
    session: AsyncSession, db: Database, actor: Actor, application: str | None, now: datetime
) -> AuditChainVerification:
    """Recompute the chain: the whole log for product admins, one application's entries for its
    application admins and auditors (who cannot see the entries between theirs, so only their
    application's links and each entry's own hash are checked)."""
    application_id: UUID | None = None
    if application is not None:
        application_id = (await application_for(session, actor, application, _AUDIT_READERS)).id
    elif not actor.is_product_admin:
        raise Forbidden(
            "verifying the whole audit log needs product-admin; application admins and "
            "auditors verify their application's chain (?application=)"
        )
    verifier = Verifier(whole_log=application_id is None)
    after = 0
    while page := await links_page(db, application_id, after, _PAGE):
        if not verifier.check(page):
            break
        after = page[-1][1].seq
    head = verifier.head
    broken = verifier.broken
    return AuditChainVerification(
        verified=verifier.checked,
        broken=ChainBreak(event_id=broken.event_id, seq=broken.seq, reason=broken.reason)
        if broken
        else None,
        head=ChainHead(seq=head.seq, hash=head.entry_hash.hex()) if head else None,
        unsealed=await unsealed(db, application_id, now - _SEAL_GRACE),
    )
