"""OCSP (RFC 6960): `POST /ocsp/{ca_id}` and the GET form. Public: relying parties ask.

Every answer is an `application/ocsp-response` with HTTP 200, including the unsuccessful
ones (`malformedRequest`, `unauthorized`, `internalError`): OCSP clients read OCSP, not
problem documents. Mounted at the root, outside `/api/v1`, where issued certificates' AIA
extension points.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from certforge.api.context import ApiContext
from certforge.api.deps import ContextDep
from certforge.api.domain import ocsp as domain
from certforge.api.ocsp import Status, decode_get, unsuccessful
from certforge.common.contracts.routes import OCSP, OCSP_PREFIX

log = logging.getLogger(__name__)

router = APIRouter(prefix=OCSP_PREFIX, tags=["ocsp"])

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCSP_RESPONSE: _BINARY}, "description": "a DER OCSP response"}
}


async def _answer(context: ApiContext, ca_id: str, der: bytes | None) -> domain.Answer:
    validity = timedelta(seconds=context.settings.ocsp_response_validity_seconds)
    try:
        async with context.sessions() as session:
            return await domain.answer(
                session, context.ocsp, context.leaf_keys, ca_id, der, datetime.now(UTC), validity
            )
    except Exception:
        log.exception("OCSP request for CA %r failed", ca_id[:64])
        return domain.Answer(unsuccessful(Status.INTERNAL_ERROR))


@router.post(
    OCSP,
    name="ocsp.post",
    response_class=Response,
    responses=_RESPONSE,
    openapi_extra={"requestBody": {"required": True, "content": {OCSP_REQUEST: _BINARY}}},
)
async def ocsp_post(ca_id: str, request: Request, context: ContextDep) -> Response:
    """Status of one certificate of CA `ca_id`; the body is a DER `OCSPRequest`."""
    answer = await _answer(context, ca_id, await request.body())
    return Response(answer.der, media_type=OCSP_RESPONSE)


@router.get(OCSP + "/{encoded:path}", name="ocsp.get", response_class=Response, responses=_RESPONSE)
async def ocsp_get(ca_id: str, encoded: str, context: ContextDep) -> Response:
    """The GET form (RFC 6960 appendix A.1): the URL-encoded base64 of the DER request.

    Successful answers may be cached until their nextUpdate.
    """
    answer = await _answer(context, ca_id, decode_get(encoded))
    if answer.next_update is None:
        cache = "no-store"
    else:
        seconds = int((answer.next_update - datetime.now(UTC)).total_seconds())
        limit = context.settings.ocsp_response_validity_seconds
        cache = f"public, max-age={max(0, min(seconds, limit))}, no-transform, must-revalidate"
    return Response(answer.der, media_type=OCSP_RESPONSE, headers={"Cache-Control": cache})
