from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from fastapi import APIRouter, Body, Request, Response
from sqlmodel import col, select

from certforge.api import client_certs, rate_limits
from certforge.api.deps import ActorDep, AuditDep, ContextDep, ProductAdminDep, SessionDep
from certforge.api.domain import auth_methods, certificate_bindings, identities
from certforge.api.domain.jwt_login import LoginRefused
from certforge.api.domain.paging import PageDep
from certforge.api.problems import problem_response, status_for
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.common import Page
from certforge.api.schemas.identities import (
    AuthMethodCreate,
    AuthMethodPublic,
    CertificateBindingCreate,
    CertificateBindingPublic,
    IdentityCreate,
    IdentityCreated,
    IdentityDetail,
    IdentityPublic,
    LoginRequest,
    LoginResult,
    NewToken,
    TokenCreate,
    TokenPublic,
)
from certforge.api.versions import IfMatch, guard, tagged
from certforge.common.db.tables import IdentityAuthMethod
from certforge.common.errors import RateLimited, Unauthenticated

router = APIRouter(prefix=API_PREFIX, tags=["identities"])


@router.post("/identities", status_code=201, name="identity.create")
async def create_identity(
    body: IdentityCreate, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> IdentityCreated:
    """Create a person or machine identity and its first token (shown once)."""
    return await identities.create(session, audit, body)


@router.get("/identities", name="identity.list")
async def list_identities(
    session: SessionDep, _: ProductAdminDep, page: PageDep
) -> Page[IdentityPublic]:
    """Newest first (`limit`, `cursor`: the API's one paging convention)."""
    return await identities.list_all(session, page)


@router.get("/me", name="identity.me")
async def me(session: SessionDep, actor: ActorDep) -> IdentityDetail:
    """The caller's identity, tokens and memberships."""
    return await identities.detail(session, actor.identity_id)


@router.get("/identities/{identity_id}", name="identity.get")
async def get_identity(
    identity_id: UUID, session: SessionDep, _: ProductAdminDep, response: Response
) -> IdentityDetail:
    """With its `ETag`."""
    return tagged(response, await identities.detail(session, identity_id))


@router.delete("/identities/{identity_id}", status_code=204, name="identity.disable")
async def disable_identity(
    identity_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    """Disable the identity and revoke all its tokens."""
    await identities.disable(session, audit, identity_id)
    return Response(status_code=204)


@router.post("/identities/{identity_id}/tokens", status_code=201, name="identity.token.create")
async def create_token(
    identity_id: UUID,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
    body: TokenCreate = Body(default_factory=TokenCreate),
) -> NewToken:
    return await identities.add_token(session, audit, identity_id, body.ttl)


@router.delete(
    "/identities/{identity_id}/tokens/{token_id}", status_code=204, name="identity.token.revoke"
)
async def revoke_token(
    identity_id: UUID, token_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await identities.revoke_token(session, audit, identity_id, token_id)
    return Response(status_code=204)


@router.get(
    "/identities/{identity_id}/tokens",
    name="identity.token.list",
    summary="List an identity's static and access tokens (without secrets)",
)
async def list_tokens(
    identity_id: UUID, session: SessionDep, _: ProductAdminDep, page: PageDep
) -> Page[TokenPublic]:
    """Static, access and session tokens of the identity, newest first, without their secrets."""
    return await identities.list_tokens(session, identity_id, page)


@router.post(
    "/identities/{identity_id}/auth-methods",
    status_code=201,
    name="identity.auth_method.create",
    summary="Let an identity log in with a JWT from a trusted issuer",
)
async def create_auth_method(
    identity_id: UUID,
    body: AuthMethodCreate,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
) -> AuthMethodPublic:
    """Trust JWTs of one issuer (OIDC discovery, or static JWKS / PEM keys) whose audience and
    bound claims match: a pipeline or pod then logs in with the token its platform gives it."""
    return await auth_methods.create(session, audit, identity_id, body)


@router.get(
    "/identities/{identity_id}/auth-methods",
    name="identity.auth_method.list",
    summary="List an identity's auth methods",
)
async def list_auth_methods(
    identity_id: UUID, session: SessionDep, _: ProductAdminDep
) -> list[AuthMethodPublic]:
    return await auth_methods.list_for(session, identity_id)


@router.get(
    "/identities/{identity_id}/auth-methods/{method_id}",
    name="identity.auth_method.get",
    summary="Get an auth method",
)
async def get_auth_method(
    identity_id: UUID, method_id: UUID, session: SessionDep, _: ProductAdminDep, response: Response
) -> AuthMethodPublic:
    """With its `ETag`: send it back in `If-Match` to replace it only if nobody did since."""
    return tagged(response, await auth_methods.get(session, identity_id, method_id))


@router.put(
    "/identities/{identity_id}/auth-methods/{method_id}",
    name="identity.auth_method.replace",
    summary="Replace an auth method's rules, revoking the tokens it minted",
)
async def replace_auth_method(
    identity_id: UUID,
    method_id: UUID,
    body: AuthMethodCreate,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
    response: Response,
    if_match: IfMatch = None,
) -> AuthMethodPublic:
    """412 when `If-Match` names a version that is no longer current."""
    await guard(
        session,
        if_match,
        lambda: auth_methods.get(session, identity_id, method_id),
        lambda m: select(IdentityAuthMethod).where(col(IdentityAuthMethod.id) == m.id),
    )
    replaced = await auth_methods.replace(session, audit, identity_id, method_id, body)
    return tagged(response, replaced)


@router.delete(
    "/identities/{identity_id}/auth-methods/{method_id}",
    status_code=204,
    name="identity.auth_method.delete",
    summary="Delete an auth method and revoke the tokens it minted",
)
async def delete_auth_method(
    identity_id: UUID, method_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await auth_methods.delete(session, audit, identity_id, method_id)
    return Response(status_code=204)


@router.post(
    "/auth/login",
    status_code=201,
    name="auth.login",
    response_model=LoginResult,
    summary="Exchange a workload's JWT for a short-lived access token",
    responses={
        401: {"description": "login refused (the reason is in the audit log only)"},
        429: {"description": "too many attempts for this identity or source; see Retry-After"},
    },
)
async def login(
    body: LoginRequest, request: Request, session: SessionDep, context: ContextDep
) -> LoginResult | Response:
    """No bearer token needed: the JWT is the credential. Every refusal is the same 401, but for
    too many attempts (429 with Retry-After), which says nothing about the credential."""
    keys, settings = context.login_keys, context.settings
    source = client_certs.source_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        settings.trusted_proxy_networks,
    )
    attempt = auth_methods.LoginAttempt(details={"identity": body.identity[:128], "source": source})
    request_id = getattr(request.state, "request_id", None)
    now = datetime.now(UTC)
    try:
        await _take_login_tokens(context, body.identity, source, now)
    except RateLimited as limited:
        await auth_methods.record_refusal(context.sessions, attempt, limited.detail, request_id)
        return problem_response(
            request,
            status_for(limited),
            limited.code,
            limited.detail,
            headers={"Retry-After": str(limited.retry_after)},
        )
    try:
        return await auth_methods.login(
            session,
            body,
            keys,
            timedelta(seconds=settings.login_jwt_leeway_seconds),
            attempt,
            request_id,
            now,
        )
    except LoginRefused as refused:
        await session.rollback()
        await auth_methods.record_refusal(context.sessions, attempt, refused.reason, request_id)
        error = Unauthenticated("login refused")
        return problem_response(
            request,
            status_for(error),
            error.code,
            error.detail,
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _take_login_tokens(
    context: ContextDep, identity: str, source: str, now: datetime
) -> None:
    settings = context.settings
    for limit, key in (
        (rate_limits.Limit("login-per-identity", settings.login_attempts_per_identity), identity),
        (rate_limits.Limit("login-per-source", settings.login_attempts_per_source), source),
    ):
        await rate_limits.take(context.db, limit, key, now)


@router.post(
    "/identities/{identity_id}/certificate-bindings",
    status_code=201,
    name="identity.certificate_binding.create",
    summary="Let certificates Certforge issued authenticate an identity (mTLS)",
)
async def create_certificate_binding(
    identity_id: UUID,
    body: CertificateBindingCreate,
    session: SessionDep,
    audit: AuditDep,
    _: ProductAdminDep,
) -> CertificateBindingPublic:
    """Behind a trusted proxy that verifies client certificates, a caller presenting an active
    certificate of the profile whose names match is this identity: no token needed."""
    return await certificate_bindings.create(session, audit, identity_id, body)


@router.get(
    "/identities/{identity_id}/certificate-bindings",
    name="identity.certificate_binding.list",
    summary="List an identity's certificate bindings",
)
async def list_certificate_bindings(
    identity_id: UUID, session: SessionDep, _: ProductAdminDep
) -> list[CertificateBindingPublic]:
    return await certificate_bindings.list_for(session, identity_id)


@router.delete(
    "/identities/{identity_id}/certificate-bindings/{binding_id}",
    status_code=204,
    name="identity.certificate_binding.delete",
    summary="Delete a certificate binding",
)
async def delete_certificate_binding(
    identity_id: UUID, binding_id: UUID, session: SessionDep, audit: AuditDep, _: ProductAdminDep
) -> Response:
    await certificate_bindings.delete(session, audit, identity_id, binding_id)
    return Response(status_code=204)
