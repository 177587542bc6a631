"""Bearer tokens: 256 random bits shown once, stored as SHA-256, looked up by hash.

A plain SHA-256 suffices (no slow KDF) because the token is high-entropy random, not a
password: brute force of the hash is as hard as guessing the token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.db.tables import ApiToken, Identity, Membership
from certforge.common.domain import Role
from certforge.common.errors import Unauthenticated

TOKEN_PREFIX = "cf_"  # noqa: S105 - a prefix, not a secret
_LAST_USED_GRANULARITY = timedelta(minutes=5)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_record(identity_id: UUID, token: str, expires_at: datetime | None) -> ApiToken:
    return ApiToken(
        identity_id=identity_id,
        token_hash=hash_token(token),
        prefix=token[:10],
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class Actor:
    """The authenticated caller and what it may do."""

    identity_id: UUID
    name: str
    is_product_admin: bool
    roles: dict[UUID, Role] = field(default_factory=dict)

    def role_in(self, application_id: UUID) -> Role | None:
        return self.roles.get(application_id)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header; send `Authorization: Bearer <token>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be `Bearer <token>`")
    return token.strip()


async def authenticate(session: AsyncSession, authorization: str | None, now: datetime) -> Actor:
    token = bearer_token(authorization)
    # one round trip: the token, its identity and every membership (one row per membership)
    rows = (
        await session.exec(
            select(ApiToken, Identity, Membership)
            .join(Identity, col(Identity.id) == col(ApiToken.identity_id))
            .outerjoin(Membership, col(Membership.identity_id) == col(Identity.id))
            .where(ApiToken.token_hash == hash_token(token))
        )
    ).all()
    if not rows:
        raise Unauthenticated("invalid token")
    api_token, identity, _ = rows[0]
    if api_token.revoked_at is not None:
        raise Unauthenticated("token has been revoked")
    if api_token.expires_at is not None and api_token.expires_at <= now:
        raise Unauthenticated("token has expired")
    if identity.disabled_at is not None:
        raise Unauthenticated("identity is disabled")
    if api_token.last_used_at is None or now - api_token.last_used_at > _LAST_USED_GRANULARITY:
        await session.exec(
            update(ApiToken).where(col(ApiToken.id) == api_token.id).values(last_used_at=now)
        )
        await session.commit()
    return Actor(
        identity_id=identity.id,
        name=identity.name,
        is_product_admin=identity.is_product_admin,
        roles={m.application_id: Role(m.role) for _, _, m in rows if m is not None},
    )
