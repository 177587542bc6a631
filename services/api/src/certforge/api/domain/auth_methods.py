"""Auth methods of an identity and the login that exchanges a workload's JWT for an access token.

An access token is an `api_tokens` row like a static token (kind `access`, an expiry, the
method that minted it), so it works everywhere a static token does and the per-request lookup
(`certforge.api.auth.authenticate`) is unchanged: no cache, so a revocation takes effect on
the next request.

Login refusals are all the same 401 to the caller; the reason (bad signature, unknown kid,
claim mismatch, replay, rate limit, …) goes to the audit log only, so a caller cannot probe
which check failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor, new_token, token_record
from certforge.api.domain.common import commit, get_or_404, now, of_identity
from certforge.api.domain.jwt_login import (
    IssuerKeys,
    JwtRules,
    LoginRefused,
    access_token_expiry,
    peek,
    pem_to_jwk,
    usable_keys,
    verify,
)
from certforge.api.schemas.identities import (
    AuthMethodCreate,
    AuthMethodPublic,
    JwtMethodConfig,
    LoginRequest,
    LoginResult,
)
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import ApiToken, AuditEvent, Identity, IdentityAuthMethod
from certforge.common.errors import Conflict, NotFound

log = logging.getLogger(__name__)

_MAX_DOCUMENT_BYTES = 512 * 1024


# --- CRUD ------------------------------------------------------------------------------------


def public(method: IdentityAuthMethod) -> AuthMethodPublic:
    return AuthMethodPublic(
        id=method.id,
        identity_id=method.identity_id,
        name=method.name,
        kind=method.kind,
        jwt=JwtMethodConfig.model_validate(method.config),
        created_at=method.created_at,
        updated_at=method.updated_at,
    )


async def create(
    session: AsyncSession, audit: AuditScope, identity_id: UUID, body: AuthMethodCreate
) -> AuthMethodPublic:
    identity = await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    if identity.disabled_at is not None:
        raise Conflict.on_field("identity_id", "the identity is disabled")
    duplicate = ("name", f"identity {identity.name!r} has an auth method named {body.name!r}")
    existing = await session.exec(
        select(IdentityAuthMethod).where(
            IdentityAuthMethod.identity_id == identity_id, IdentityAuthMethod.name == body.name
        )
    )
    if existing.first():
        raise Conflict.on_field(*duplicate)
    method = IdentityAuthMethod(
        identity_id=identity_id,
        name=body.name,
        kind=body.kind,
        config=body.jwt.model_dump(mode="json"),
    )
    session.add(method)
    audit.record(
        session,
        resource_type="identity",
        resource_id=identity_id,
        details={"auth_method": body.name, "kind": body.kind, "issuer": body.jwt.issuer},
        status_code=201,
    )
    await commit(session, duplicate=duplicate)
    return public(method)


async def list_for(session: AsyncSession, identity_id: UUID) -> list[AuthMethodPublic]:
    return [public(m) for m in await of_identity(session, IdentityAuthMethod, identity_id)]


async def _get(session: AsyncSession, identity_id: UUID, method_id: UUID) -> IdentityAuthMethod:
    method = await session.get(IdentityAuthMethod, method_id)
    if method is None or method.identity_id != identity_id:
        raise NotFound.on_field(
            "method_id", f"no auth method {method_id} for identity {identity_id}"
        )
    return method


async def get(session: AsyncSession, identity_id: UUID, method_id: UUID) -> AuthMethodPublic:
    return public(await _get(session, identity_id, method_id))


async def replace(
    session: AsyncSession,
    audit: AuditScope,
    identity_id: UUID,
    method_id: UUID,
    body: AuthMethodCreate,
) -> AuthMethodPublic:
    """Replace the method's name and rules, and revoke the tokens it minted under the old ones:
    a tightened trust (a narrower ref, a new audience) takes effect at once."""
    method = await _get(session, identity_id, method_id)
    # Before the change: the query would flush it, and a duplicate name would fail there, out of
    # `commit`'s reach (a 500 instead of the 409 below).
    await _revoke_minted(session, method_id)
    method.name, method.kind = body.name, body.kind
    method.config = body.jwt.model_dump(mode="json")
    method.updated_at = now()
    session.add(method)
    audit.record(
        session,
        resource_type="identity",
        resource_id=identity_id,
        details={"auth_method": body.name, "kind": body.kind, "issuer": body.jwt.issuer},
    )
    duplicate = ("name", f"the identity has another auth method named {body.name!r}")
    await commit(session, duplicate=duplicate)
    return public(method)


async def _revoke_minted(session: AsyncSession, method_id: UUID) -> None:
    when = now()
    tokens = await session.exec(
        select(ApiToken).where(
            ApiToken.auth_method_id == method_id, col(ApiToken.revoked_at).is_(None)
        )
    )
    for token in tokens:
        token.revoked_at = when
        session.add(token)


async def delete(
    session: AsyncSession, audit: AuditScope, identity_id: UUID, method_id: UUID
) -> None:
    """Delete the method and revoke the live access tokens it minted: removing a trust must
    not leave its tokens working for another quarter of an hour."""
    method = await _get(session, identity_id, method_id)
    await _revoke_minted(session, method_id)
    await session.delete(method)
    audit.record(
        session,
        resource_type="identity",
        resource_id=identity_id,
        details={"auth_method": method.name},
        status_code=204,
    )
    await commit(session)


# --- the issuers' keys -------------------------------------------------------------------------


@dataclass
class _Fetched:
    keys: IssuerKeys
    at: float


@dataclass
class JwksCache:
    """Issuers' key sets by JWKS source, fetched by OIDC discovery.

    Refetched when older than `max_age`, or when a token names a `kid` the cached set lacks
    (the issuer rotated its keys) — but at most once per `min_refresh` per issuer, so tokens
    with made-up `kid`s cannot turn the api into a flood against the issuer. One fetch at a
    time per issuer (a lock), so a burst of logins after a rotation fetches once.
    """

    max_age: float
    min_refresh: float
    timeout: float = 5.0
    _entries: dict[str, _Fetched] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _tried: dict[str, float] = field(default_factory=dict)
    """When each issuer was last asked (success or failure): `min_refresh` counts from here."""

    async def keys(self, issuer: str, kid: str | None) -> IssuerKeys:
        entry = self._entries.get(issuer)
        if entry is not None and not self._stale(entry, kid):
            return entry.keys
        lock = self._locks.setdefault(issuer, asyncio.Lock())
        async with lock:
            entry = self._entries.get(issuer)
            if entry is not None and not self._stale(entry, kid):
                return entry.keys
            tried = self._tried.get(issuer)
            if tried is not None and time.monotonic() - tried < self.min_refresh:
                # asked a moment ago (successfully or not): no new request to the issuer
                if entry is None:
                    raise LoginRefused("issuer keys unavailable (last fetch failed)")
                return entry.keys
            self._tried[issuer] = time.monotonic()
            try:
                keys = await self._fetch(issuer)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not fetch the keys of issuer %s: %s", issuer, exc)
                if entry is not None:
                    return entry.keys  # keep the last good keys while the issuer is down
                raise LoginRefused(f"issuer keys unavailable: {type(exc).__name__}") from None
            self._entries[issuer] = _Fetched(keys, time.monotonic())
            return keys

    def _stale(self, entry: _Fetched, kid: str | None) -> bool:
        if time.monotonic() - entry.at >= self.max_age:
            return True
        return kid is not None and not any(k.kid == kid for k in entry.keys)

    async def _fetch(self, issuer: str) -> IssuerKeys:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            discovery = await _json(
                client, issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise ValueError("discovery document has no jwks_uri")
            return usable_keys(await _json(client, jwks_uri))


async def _json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _MAX_DOCUMENT_BYTES:
                raise ValueError("document too large")
    import orjson

    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


# --- login ---------------------------------------------------------------------------------------


@dataclass
class LoginAttempt:
    """Who tried, from where: what the audit entry of a refusal can say."""

    identity_id: UUID | None = None
    identity_name: str = ""
    method: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


async def login(
    session: AsyncSession,
    body: LoginRequest,
    keys: JwksCache,
    leeway: timedelta,
    attempt: LoginAttempt,
    request_id: str | None,
    at: datetime,
) -> LoginResult:
    """Exchange a JWT for an access token; `LoginRefused` (reason for the audit) otherwise."""
    identity = await _identity(session, body.identity)
    if identity is None:
        raise LoginRefused("unknown identity")
    attempt.identity_id, attempt.identity_name = identity.id, identity.name
    if identity.disabled_at is not None:
        raise LoginRefused("identity is disabled")
    header, unverified = peek(body.jwt)
    methods = await session.exec(
        select(IdentityAuthMethod).where(
            IdentityAuthMethod.identity_id == identity.id, IdentityAuthMethod.kind == "jwt"
        )
    )
    candidates = [m for m in methods if m.config.get("issuer") == unverified.get("iss")]
    if not candidates:
        raise LoginRefused(f"no jwt auth method for issuer {str(unverified.get('iss'))[:200]!r}")
    refusal: LoginRefused | None = None
    for method in candidates:  # several methods may trust one issuer with different claims
        config = JwtMethodConfig.model_validate(method.config)
        attempt.method = method.name
        try:
            verified = verify(
                body.jwt, await _keys_of(config, keys, header), _rules(config, leeway), at
            )
        except LoginRefused as exc:
            refusal = exc
            continue
        break
    else:
        assert refusal is not None
        raise refusal
    if verified.jti is not None and not await _first_use(session, config.issuer, verified, at):
        raise LoginRefused("jti already used (replay)")
    expires_at = access_token_expiry(
        at, config.token_ttl, verified.expires_at, config.allow_beyond_jwt_expiry
    )
    if expires_at <= at:
        raise LoginRefused("jwt expires now")
    token = new_token()
    record = token_record(identity.id, token, expires_at)
    record.kind, record.auth_method_id = "access", method.id
    session.add(record)
    actor = Actor(identity.id, identity.name, identity.is_product_admin)
    AuditScope(actor, "auth.login", request_id).record(
        session,
        resource_type="identity",
        resource_id=identity.id,
        details={
            **attempt.details,
            "method": method.name,
            "token_id": str(record.id),
            "sub": str(verified.claims.get("sub", ""))[:200],
            "expires_at": expires_at.isoformat(),
        },
        status_code=201,
    )
    await commit(session)
    return LoginResult(
        access_token=token,
        token_id=record.id,
        expires_at=expires_at,
        expires_in=int((expires_at - at).total_seconds()),
        identity_id=identity.id,
    )


async def record_refusal(
    sessions: SessionFactory, attempt: LoginAttempt, reason: str, request_id: str | None
) -> None:
    """The audit entry of a refused login, with its reason (which the caller never sees), in a
    transaction of its own since the login's was rolled back. Never raises: the 401 stands."""
    try:
        async with sessions() as session:
            session.add(
                AuditEvent(
                    actor_id=attempt.identity_id,
                    actor_name=attempt.identity_name,
                    action="auth.login",
                    resource_type="identity",
                    resource_id=str(attempt.identity_id) if attempt.identity_id else None,
                    outcome="denied",
                    status_code=401,
                    details={
                        **attempt.details,
                        "code": "unauthenticated",
                        "method": attempt.method,
                        "reason": reason[:500].replace("\x00", ""),
                    },
                    request_id=request_id,
                )
            )
            await session.commit()
    except Exception:
        log.exception("could not record a refused login in the audit log")


async def _identity(session: AsyncSession, ref: str) -> Identity | None:
    try:
        by_id = await session.get(Identity, UUID(ref))
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    return (await session.exec(select(Identity).where(Identity.name == ref))).first()


def _rules(config: JwtMethodConfig, leeway: timedelta) -> JwtRules:
    bound = {k: [v] if isinstance(v, str) else v for k, v in config.bound_claims.items()}
    return JwtRules(
        issuer=config.issuer,
        audience=config.audience,
        bound_claims=bound,
        algorithms=config.algorithms,
        leeway=leeway,
    )


async def _keys_of(config: JwtMethodConfig, cache: JwksCache, header: dict[str, Any]) -> IssuerKeys:
    if config.jwks is not None:
        return usable_keys(config.jwks)
    if config.public_keys is not None:
        return usable_keys({"keys": [pem_to_jwk(p) for p in config.public_keys]})
    kid = header.get("kid")
    return await cache.keys(config.issuer, kid if isinstance(kid, str) else None)


async def _first_use(session: AsyncSession, issuer: str, verified: Any, at: datetime) -> bool:
    """Record the `jti` until the JWT expires (plus leeway); False when it was already there.
    In PostgreSQL, so every replica agrees; expired entries are swept on the way."""
    await session.exec(  # type: ignore[call-overload]
        text("DELETE FROM used_jwt_ids WHERE expires_at < :at"), params={"at": at}
    )
    inserted = await session.exec(  # type: ignore[call-overload]
        text(
            "INSERT INTO used_jwt_ids (issuer, jti, expires_at) VALUES (:iss, :jti, :exp) "
            "ON CONFLICT DO NOTHING RETURNING jti"
        ),
        params={
            "iss": issuer,
            "jti": verified.jti[:256],
            "exp": verified.expires_at + timedelta(minutes=5),
        },
    )
    return inserted.first() is not None
