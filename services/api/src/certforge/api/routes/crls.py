"""CRLs, served from memory after the first read (the issuer signs them; nothing is built per
request). Public. Remembered CRLs are served by the fast path in front of the app
(`fast_path.py`); these handlers load the others and answer 404 / 503 as problem documents."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from certforge.api.context import ApiContext
from certforge.api.deps import ContextDep
from certforge.api.domain import crls as domain
from certforge.api.revocation_http import CRL_DER, CRL_PEM, Conditions, crl_reply
from certforge.api.routes import API_PREFIX
from certforge.common.contracts.routes import CA_CRL

router = APIRouter(prefix=API_PREFIX, tags=["certificate authorities"])

_CONDITIONAL: dict[int | str, dict[str, Any]] = {
    304: {"description": "the client's copy (If-None-Match) is current"}
}


async def _serve(context: ApiContext, ca_id: UUID, request: Request, pem: bool) -> Response:
    served = await domain.current(
        context.sessions,
        context.crls,
        ca_id,
        time.monotonic,
        context.settings.crl_recheck_seconds,
    )
    conditions = Conditions(
        request.headers.get("if-none-match"), request.headers.get("if-modified-since")
    )
    reply = crl_reply(served, pem, datetime.now(UTC), conditions)
    return Response(reply.body, reply.status, headers=reply.headers)


@router.get(
    CA_CRL,
    name="ca.crl",
    response_class=Response,
    responses={
        200: {"content": {CRL_DER: {}}, "description": "the current CRL, DER"},
        **_CONDITIONAL,
    },
)
async def crl_der(ca_id: UUID, request: Request, context: ContextDep) -> Response:
    """The CA's current CRL (DER); the CRL distribution point of issued certificates."""
    return await _serve(context, ca_id, request, pem=False)


@router.get(
    "/cas/{ca_id}/crl.pem",
    name="ca.crl.pem",
    response_class=Response,
    responses={
        200: {"content": {CRL_PEM: {}}, "description": "the current CRL, PEM"},
        **_CONDITIONAL,
    },
)
async def crl_pem(ca_id: UUID, request: Request, context: ContextDep) -> Response:
    return await _serve(context, ca_id, request, pem=True)
