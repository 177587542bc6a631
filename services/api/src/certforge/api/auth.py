"""Bearer tokens: 256 random bits shown once, stored as SHA-256, looked up by hash.

A plain SHA-256 suffices (no slow KDF) because the token is high-entropy random, not a
password: brute force of the hash is as hard as guessing the token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
from uuid import UUID

import orjson

from certforge.common.db.pool import Database
from certforge.common.db.tables import ApiToken
from certforge.common.domain import Role
from certforge.common.errors import Unauthenticated

if TYPE_CHECKING:
    from certforge.api.access_cache import AccessCache

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


_ACTOR_SQL = """
SELECT t.id AS token_id, t.revoked_at, t.expires_at, t.last_used_at,
       i.id AS identity_id, i.name, i.is_product_admin, i.disabled_at,
       m.application_id, m.role
FROM api_tokens t
JOIN identities i ON i.id = t.identity_id
LEFT JOIN memberships m ON m.identity_id = i.id
WHERE t.token_hash = $1
"""
"""The token, its identity and every membership (a row per membership): one round trip."""


_CERTIFICATE_SQL = """
SELECT c.common_name, c.sans, c.status, c.not_after,
       b.identity_id, b.common_name AS cn_pattern, b.san AS san_pattern,
       i.name, i.is_product_admin, i.disabled_at,
       m.application_id, m.role
FROM certificates c
JOIN identity_certificate_bindings b ON b.profile_id = c.profile_id
JOIN identities i ON i.id = b.identity_id
LEFT JOIN memberships m ON m.identity_id = i.id
WHERE c.ca_id IN (SELECT id FROM certificate_authorities)
  AND c.serial_number = $1 AND c.fingerprint_sha256 = $2
"""
"""A certificate Certforge issued (serial and exact fingerprint: a look-alike with the same
serial is not it), each binding of its profile, and each bound identity's memberships."""


async def authenticate_certificate(
    db: Database, serial: str, fingerprint: str, now: datetime
) -> Actor:
    """The identity a client certificate is bound to: one of Certforge's own certificates,
    active and unexpired, matching exactly one identity's binding (its profile, and glob
    patterns on the common name and on any SAN)."""
    rows = await db.fetch(_CERTIFICATE_SQL, serial, fingerprint)
    if not rows:
        raise Unauthenticated("client certificate is not bound to an identity")
    first = rows[0]
    if first["status"] != "active" or first["not_after"] <= now:
        raise Unauthenticated("client certificate is not active")
    sans = [str(s.get("value", "")) for s in _json_list(first["sans"])]
    matched = {
        r["identity_id"]
        for r in rows
        if r["disabled_at"] is None
        and _glob(r["cn_pattern"], [first["common_name"] or ""])
        and _glob(r["san_pattern"], sans)
    }
    if len(matched) != 1:
        raise Unauthenticated("client certificate is not bound to exactly one identity")
    (identity_id,) = matched
    mine = [r for r in rows if r["identity_id"] == identity_id]
    return Actor(
        identity_id=identity_id,
        name=mine[0]["name"],
        is_product_admin=mine[0]["is_product_admin"],
        roles={r["application_id"]: Role(r["role"]) for r in mine if r["role"] is not None},
    )


def _glob(pattern: str | None, values: list[str]) -> bool:
    """No pattern: no condition. Otherwise one of `values` must match (case-insensitively:
    DNS names are)."""
    if pattern is None:
        return True
    return any(fnmatchcase(v.lower(), pattern.lower()) for v in values)


def _json_list(value: object) -> list[dict[str, object]]:
    data = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a bearer token grants, as read from PostgreSQL: kept by `AccessCache.actors` (a
    revocation, a disabled identity or a role change drops it, see `access_cache`), so the
    checks that depend on time run at every use."""

    token_id: UUID
    expires_at: datetime | None
    actor: Actor
    last_used_at: datetime | None


async def authenticate(
    db: Database, authorization: str | None, now: datetime, cache: AccessCache | None = None
) -> Actor:
    """The caller of every request, so plain SQL on the pool (see certforge.common.db.pool),
    and the answer kept in `cache` between changes."""
    token_hash = hash_token(bearer_token(authorization))
    # the generation as of which `grant` is known to be current (see AccessCache.put)
    generation = cache.generation if cache is not None else 0
    grant = cache.actors.get(token_hash) if cache is not None else None
    if grant is None:
        grant = await _grant(db, token_hash)
        if cache is not None:
            cache.actors.put(token_hash, grant, generation)
    if grant.expires_at is not None and grant.expires_at <= now:
        raise Unauthenticated("token has expired")
    last_used = grant.last_used_at
    if last_used is None or now - last_used > _LAST_USED_GRANULARITY:
        # Per replica: each may write it once per period; it is a hint, not an audit record.
        await db.execute(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", grant.token_id, now
        )
        if cache is not None:
            cache.actors.put(token_hash, replace(grant, last_used_at=now), generation)
    return grant.actor


async def _grant(db: Database, token_hash: str) -> TokenGrant:
    """The token's grant; refused when the token is unknown, revoked or its identity disabled
    (refusals are not cached: a retry with a bad token costs a round trip, as before)."""
    rows = await db.fetch(_ACTOR_SQL, token_hash)
    if not rows:
        raise Unauthenticated("invalid token")
    first = rows[0]
    if first["revoked_at"] is not None:
        raise Unauthenticated("token has been revoked")
    if first["disabled_at"] is not None:
        raise Unauthenticated("identity is disabled")
    actor = Actor(
        identity_id=first["identity_id"],
        name=first["name"],
        is_product_admin=first["is_product_admin"],
        roles={r["application_id"]: Role(r["role"]) for r in rows if r["role"] is not None},
    )
    return TokenGrant(first["token_id"], first["expires_at"], actor, first["last_used_at"])
