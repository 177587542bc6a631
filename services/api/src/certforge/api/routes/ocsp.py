"""OCSP (RFC 6960): `POST /ocsp/{ca_id}` and the GET form. Public: relying parties ask.

Every answer is an `application/ocsp-response` with HTTP 200, including the unsuccessful
ones (`malformedRequest`, `unauthorized`, `internalError`): OCSP clients read OCSP, not
problem documents. Mounted at the root, outside `/api/v1`, where issued certificates' AIA
extension points. Answers this replica remembers never reach these handlers: the fast path in
front of the app serves them (`fast_path.py`); these load, sign and remember the others.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from certforge.api.context import ApiContext
from certforge.api.deps import ContextDep
from certforge.api.domain import ocsp as domain
from certforge.api.ocsp import decode_get
from certforge.api.revocation_http import OCSP_REQUEST, OCSP_RESPONSE, Conditions, ocsp_reply
from certforge.common.contracts.routes import OCSP, OCSP_PREFIX

log = logging.getLogger(__name__)

router = APIRouter(prefix=OCSP_PREFIX, tags=["ocsp"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCSP_RESPONSE: _BINARY}, "description": "a DER OCSP response"}
}


async def answer(context: ApiContext, ca_id: str, der: bytes | None) -> domain.Answer:
    """The answer, or `internalError` (an OCSP client reads OCSP, never a 500 page)."""
    try:
        return await domain.answer(context.ocsp, ca_id, der, datetime.now(UTC))
    except Exception:
        log.exception("OCSP request for CA %r failed", ca_id[:64])
        return domain.INTERNAL_ERROR


def _response(
    context: ApiContext, answer: domain.Answer, conditions: Conditions | None
) -> Response:
    limit = context.settings.ocsp_response_validity_seconds
    reply = ocsp_reply(answer.der, answer.prepared, datetime.now(UTC), limit, conditions)
    return Response(reply.body, reply.status, headers=reply.headers)


@router.post(
    OCSP,
    name="ocsp.post",
    response_class=Response,
    responses=_RESPONSE,
    openapi_extra={"requestBody": {"required": True, "content": {OCSP_REQUEST: _BINARY}}},
)
async def ocsp_post(ca_id: str, request: Request, context: ContextDep) -> Response:
    """Status of one certificate of CA `ca_id`; the body is a DER `OCSPRequest`."""
    return _response(context, await answer(context, ca_id, await request.body()), None)


@router.get(
    OCSP + "/{encoded:path}",
    name="ocsp.get",
    response_class=Response,
    responses={**_RESPONSE, 304: {"description": "the client's copy (If-None-Match) is current"}},
)
async def ocsp_get(ca_id: str, encoded: str, request: Request, context: ContextDep) -> Response:
    """The GET form (RFC 6960 appendix A.1): the URL-encoded base64 of the DER request.

    Successful answers may be cached until their nextUpdate; conditional requests get 304.
    """
    conditions = Conditions(
        request.headers.get("if-none-match"), request.headers.get("if-modified-since")
    )
    return _response(context, await answer(context, ca_id, decode_get(encoded)), conditions)
