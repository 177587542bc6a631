"""FastAPI dependencies as `Annotated` aliases: the session, the caller, the audit scope.

All are `async def`: FastAPI runs a plain `def` dependency on a worker thread, a thread hop per
dependency per request for what is a dictionary lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api import client_certs
from certforge.api.audit import AuditScope, route_action
from certforge.api.auth import Actor, authenticate, authenticate_certificate
from certforge.api.context import ApiContext
from certforge.common.errors import Forbidden


async def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.certforge
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    async with context.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


class BearerHeader(SecurityBase):
    """Declares the bearer scheme in the OpenAPI document (so `/docs` offers "Authorize") and
    hands over the raw `Authorization` header: `auth.bearer_token` parses it, with errors that
    say what is wrong, where FastAPI's `HTTPBearer` would only answer "Not authenticated"."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description="An API token: `Authorization: Bearer <token>`.", bearerFormat="opaque"
        )
        self.scheme_name = "bearer"

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


_bearer = BearerHeader()


async def get_actor(
    request: Request,
    context: ContextDep,
    authorization: Annotated[str | None, Depends(_bearer)],
) -> Actor:
    actor = await _client_certificate_actor(request, context, authorization)
    if actor is None:
        actor = await authenticate(context.db, authorization, datetime.now(UTC), context.access)
    request.state.actor = actor
    return actor


async def _client_certificate_actor(
    request: Request, context: ContextDep, authorization: str | None
) -> Actor | None:
    """A caller without a bearer token, behind a trusted proxy that passed its verified client
    certificate: the identity bound to that certificate (see `certforge.api.client_certs`).
    A bearer token, when sent, always wins; the header from anyone else is ignored."""
    if authorization:
        return None
    settings = context.settings
    header = request.headers.get(settings.client_cert_header)
    if not header:
        return None
    source = request.client.host if request.client else None
    if not client_certs.from_trusted_proxy(source, settings.trusted_proxy_networks):
        return None
    serial, fingerprint = client_certs.identify(client_certs.parse_header(header))
    return await authenticate_certificate(context.db, serial, fingerprint, datetime.now(UTC))


ActorDep = Annotated[Actor, Depends(get_actor)]


async def get_product_admin(actor: ActorDep) -> Actor:
    if not actor.is_product_admin:
        raise Forbidden("this action needs the product-admin role")
    return actor


ProductAdminDep = Annotated[Actor, Depends(get_product_admin)]


async def get_audit(request: Request, actor: ActorDep) -> AuditScope:
    return AuditScope(
        actor=actor,
        action=route_action(request) or request.url.path,
        request_id=getattr(request.state, "request_id", None),
    )


AuditDep = Annotated[AuditScope, Depends(get_audit)]
