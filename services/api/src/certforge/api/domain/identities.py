"""Identities (people and machines) and their tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import hash_token, new_token, token_record
from certforge.api.domain.common import commit, get_or_404, now
from certforge.api.domain.paging import PageRequest, keyset_page
from certforge.api.schemas.common import Page
from certforge.api.schemas.identities import (
    IdentityCreate,
    IdentityCreated,
    IdentityDetail,
    IdentityPublic,
    MembershipPublic,
    NewToken,
    TokenPublic,
)
from certforge.common.db.tables import ApiToken, Application, Identity, Membership
from certforge.common.domain import Role
from certforge.common.errors import Conflict, NotFound


def public(identity: Identity) -> IdentityPublic:
    return IdentityPublic(
        id=identity.id,
        name=identity.name,
        product_admin=identity.is_product_admin,
        created_at=identity.created_at,
        disabled_at=identity.disabled_at,
    )


def _expiry(ttl: timedelta | None) -> datetime | None:
    return now() + ttl if ttl is not None else None


async def create(session: AsyncSession, audit: AuditScope, body: IdentityCreate) -> IdentityCreated:
    if (await session.exec(select(Identity).where(Identity.name == body.name))).first():
        raise Conflict.on_field("name", f"an identity named {body.name!r} exists")
    identity = Identity(name=body.name, is_product_admin=body.product_admin)
    token = new_token()
    record = token_record(identity.id, token, _expiry(body.token_ttl))
    session.add(identity)
    await session.flush()
    session.add(record)
    audit.record(
        session,
        resource_type="identity",
        resource_id=identity.id,
        details={"name": identity.name, "product_admin": identity.is_product_admin},
        status_code=201,
    )
    await commit(session, duplicate=("name", f"an identity named {body.name!r} exists"))
    return IdentityCreated(**public(identity).model_dump(), token=token, token_id=record.id)


async def list_all(session: AsyncSession, page: PageRequest) -> Page[IdentityPublic]:
    rows, cursor = await keyset_page(
        session,
        select(Identity),
        col(Identity.created_at),
        col(Identity.id),
        page,
        lambda i: (i.created_at, i.id),
    )
    return Page(items=[public(i) for i in rows], next_cursor=cursor)


async def list_tokens(
    session: AsyncSession, identity_id: UUID, page: PageRequest
) -> Page[TokenPublic]:
    """An identity's static, access and console session tokens, newest first, without their
    secrets: one per sign-in, so the list grows with use and is paged like every other."""
    await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    rows, cursor = await keyset_page(
        session,
        select(ApiToken).where(ApiToken.identity_id == identity_id),
        col(ApiToken.created_at),
        col(ApiToken.id),
        page,
        lambda t: (t.created_at, t.id),
    )
    return Page(
        items=[TokenPublic.model_validate(t, from_attributes=True) for t in rows],
        next_cursor=cursor,
    )


async def detail(session: AsyncSession, identity_id: UUID) -> IdentityDetail:
    identity = await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    tokens = await session.exec(
        select(ApiToken)
        .where(ApiToken.identity_id == identity_id)
        .order_by(col(ApiToken.created_at))
    )
    memberships = await session.exec(
        select(Membership, Application)
        .join(Application, col(Application.id) == col(Membership.application_id))
        .where(Membership.identity_id == identity_id)
    )
    return IdentityDetail(
        **public(identity).model_dump(),
        tokens=[TokenPublic.model_validate(t, from_attributes=True) for t in tokens],
        memberships=[
            MembershipPublic(application_id=a.id, application=a.slug, role=Role(m.role))
            for m, a in memberships
        ],
    )


async def add_token(
    session: AsyncSession, audit: AuditScope, identity_id: UUID, ttl: timedelta | None
) -> NewToken:
    identity = await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    if identity.disabled_at is not None:
        raise Conflict.on_field("identity_id", "the identity is disabled")
    token = new_token()
    record = token_record(identity.id, token, _expiry(ttl))
    session.add(record)
    audit.record(session, resource_type="identity", resource_id=identity.id, status_code=201)
    await commit(session)
    return NewToken(id=record.id, token=token, expires_at=record.expires_at)


async def revoke_token(
    session: AsyncSession, audit: AuditScope, identity_id: UUID, token_id: UUID
) -> None:
    token = await session.get(ApiToken, token_id)
    if token is None or token.identity_id != identity_id:
        raise NotFound.on_field("token_id", f"no token {token_id} for identity {identity_id}")
    if token.revoked_at is None:
        token.revoked_at = now()
        session.add(token)
    audit.record(session, resource_type="identity", resource_id=identity_id, status_code=204)
    await commit(session)


async def disable(session: AsyncSession, audit: AuditScope, identity_id: UUID) -> None:
    """Disable an identity and revoke its tokens; it stays in the audit log's references."""
    identity = await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    if identity.id == audit.actor.identity_id:
        raise Conflict.on_field("identity_id", "you cannot disable your own identity")
    when = now()
    identity.disabled_at = identity.disabled_at or when
    session.add(identity)
    for token in await session.exec(
        select(ApiToken).where(
            ApiToken.identity_id == identity_id, col(ApiToken.revoked_at).is_(None)
        )
    ):
        token.revoked_at = when
        session.add(token)
    audit.record(session, resource_type="identity", resource_id=identity_id, status_code=204)
    await commit(session)


async def ensure_bootstrap_admin(session: AsyncSession, token: str) -> bool:
    """On first start, make `token` the first product admin's token; a no-op afterwards.

    Runs under an advisory lock so several API replicas starting together create one admin.
    """
    from sqlalchemy import text

    await session.exec(text("SELECT pg_advisory_xact_lock(7262917)"))  # type: ignore[call-overload]
    if (
        await session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    ).first():
        await session.rollback()
        return False
    if (await session.exec(select(Identity).where(col(Identity.is_product_admin)))).first():
        await session.rollback()
        return False
    identity = Identity(name="bootstrap-admin", is_product_admin=True)
    session.add(identity)
    await session.flush()
    session.add(token_record(identity.id, token, None))
    await session.commit()
    return True


async def create_admin(session: AsyncSession, name: str) -> str:
    """For the `bootstrap` CLI: a new product admin; returns its token (shown once)."""
    identity = Identity(name=name, is_product_admin=True)
    session.add(identity)
    await session.flush()
    token = new_token()
    session.add(token_record(identity.id, token, None))
    await commit(session, duplicate=("name", f"an identity named {name!r} exists"))
    return token
