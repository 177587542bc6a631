"""The one place where errors become RFC 9457 `application/problem+json` responses.

Every `CertforgeError` keeps its code, detail and field list, and gets its HTTP status here from
its kind (`STATUSES`): common's error kinds know nothing of HTTP, so the issuer and the other
workers raise them without pretending to answer a request; FastAPI's validation errors
become 422 with one entry per field; malformed JSON becomes 400; anything unexpected becomes a
500 whose detail says nothing about internals (the log has the traceback and request id).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from certforge.api.acme.errors import AcmeProblem
from certforge.api.acme.responses import problem_response as acme_problem_response
from certforge.api.acme.urls import PREFIX as ACME_PREFIX
from certforge.api.allow import allowed_methods
from certforge.api.audit import record_refusal, refused_action
from certforge.api.domain.common import by_slug_or_id
from certforge.api.validation_messages import (
    explain,
    is_json_media_type,
    json_syntax_error,
    model_in,
)
from certforge.common.acme import ErrorType
from certforge.common.db.tables import Application
from certforge.common.errors import (
    CertforgeError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StaleVersion,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUSES: dict[type[CertforgeError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    StaleVersion: 412,
    PayloadTooLarge: 413,
    Unprocessable: 422,  # and its PolicyViolation
    RateLimited: 429,
    Unavailable: 503,
}
"""The HTTP status of each error kind (subclasses inherit theirs); a bare CertforgeError: 500."""
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def title_of(status: int) -> str:
    """The `title` of a problem with `status`."""
    return _TITLES.get(status, "Error")


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:certforge:problem:{code}",
        "title": title_of(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


def status_for(exc: CertforgeError) -> int:
    """The status of `exc`'s kind, or of the nearest kind it derives from."""
    for kind in type(exc).__mro__:
        if kind in STATUSES:
            return STATUSES[kind]
    return 500


async def _on_certforge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CertforgeError)
    status = status_for(exc)
    if status >= 500 and status != 503:
        log.error("internal error: %s", exc.detail, extra={"request_id": request.state.request_id})
    await _record_refusal(request, status, exc.code, exc.detail)
    return problem_response(request, status, exc.code, exc.detail, exc.errors, _headers(exc))


def _headers(exc: CertforgeError) -> dict[str, str] | None:
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unavailable):
        return {"Retry-After": "1"}  # unavailable is always worth retrying, and says when
    return None


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    syntax = next((e for e in raw if e.get("type") == "json_invalid"), None)
    if syntax is not None:
        position = syntax["loc"][-1] if isinstance(syntax["loc"][-1], int) else 0
        reason = str(syntax.get("ctx", {}).get("error", "JSON decode error"))
        detail = json_syntax_error(exc.body, position, reason).message()
        await _record_refusal(request, 400, "invalid-json", detail)
        return problem_response(request, 400, "invalid-json", detail, [FieldError("body", detail)])
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type) and any(e.get("loc", ())[:1] == ("body",) for e in raw):
        detail = f"the body must be JSON: send Content-Type: application/json (got {content_type})"
        await _record_refusal(request, 415, "unsupported-media-type", detail)
        return problem_response(request, 415, "unsupported-media-type", detail)
    errors = explain(raw, _body_model(request))
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    await _record_refusal(request, 422, "validation", detail)
    return problem_response(request, 422, "validation", detail, errors)


def _body_model(request: Request) -> type[BaseModel] | None:
    """The model the route's JSON body is read into, for suggestions of field names."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    return model_in(getattr(getattr(body_field, "field_info", None), "annotation", None))


async def _on_acme_problem(request: Request, exc: Exception) -> Response:
    """ACME routes answer ACME problem documents (RFC 8555 §6.7), with a nonce."""
    assert isinstance(exc, AcmeProblem)
    return await acme_problem_response(request, exc)


def _is_acme(request: Request) -> bool:
    return request.url.path.startswith(ACME_PREFIX + "/")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_acme(request):
        # an unknown ACME path or a wrong method: still an ACME problem, with a nonce
        acme = AcmeProblem(
            ErrorType.MALFORMED, str(exc.detail), exc.status_code, headers=exc.headers
        )
        return await acme_problem_response(request, acme)
    headers = exc.headers
    if exc.status_code == 405:
        allow = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        headers = {**(headers or {}), "Allow": allow}
    code = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
        exc.status_code, "http-error"
    )
    return problem_response(request, exc.status_code, code, str(exc.detail), headers=headers)


async def _record_refusal(request: Request, status: int, code: str, detail: str) -> None:
    """Audit a refused change, naming the application it aimed at."""
    if refused_action(request) is not None:
        application_id = await _target_application(request)
        await record_refusal(request, status, code, detail, application_id)


async def _target_application(request: Request) -> UUID | None:
    """The application of the `app` path parameter, so that its admins and auditors see the
    refusal; None when there is none, it names nothing, or it cannot be looked up (the refusal
    is still recorded, and answering it never fails because of the audit)."""
    ref = request.path_params.get("app")
    if not isinstance(ref, str):
        return None
    try:
        async with request.app.state.certforge.sessions() as session:
            app: Application = await by_slug_or_id(session, Application, ref, "application", "app")
    except NotFound:
        return None
    except Exception:
        log.exception("could not look up the application of a refused request")
        return None
    return app.id


# PostgreSQL cannot store some text (NUL bytes, invalid encodings): the caller's input.
_UNSTORABLE_TEXT = {"22021", "22P05"}


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    if _connection_lost(exc):
        # a pooled connection died (database restarted); the pool has dropped it
        detail = "the database connection was lost; retry"
        return problem_response(request, 503, "unavailable", detail, headers={"Retry-After": "1"})
    if _sqlstate(exc) in _UNSTORABLE_TEXT:
        detail = "the request contains characters that cannot be stored (e.g. NUL)"
        await _record_refusal(request, 400, "invalid-text", detail)
        return problem_response(request, 400, "invalid-text", detail)
    if _is_acme(request):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        internal = AcmeProblem(ErrorType.SERVER_INTERNAL, "internal error", 500)
        return await acme_problem_response(request, internal)
    log.exception(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        extra={"request_id": getattr(request.state, "request_id", None)},
    )
    return problem_response(request, 500, "internal", "internal error; quote the request_id")


_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "25006"}
"""The server is shutting down or restarting (`admin_shutdown`, `crash_shutdown`,
`cannot_connect_now`: a `pg_ctl stop` or a failover ends the session with one of these), or the
session is on a server that no longer accepts writes (`read_only_sql_transaction`: a primary
demoted to standby). Class 08 (connection exceptions) likewise."""


def _connection_lost(exc: Exception) -> bool:
    """Through the ORM (SQLAlchemy invalidated the connection) or on the plain asyncpg pool."""
    state = _sqlstate(exc) or ""
    if state in _UNAVAILABLE_STATES or state.startswith("08"):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | ConnectionError,
    )


def _sqlstate(exc: Exception) -> str | None:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)


_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ConnectionError,
)
"""What the database and its drivers raise: answered by `_on_unexpected` from Starlette's
`ExceptionMiddleware`. A handler registered for `Exception` itself runs in
`ServerErrorMiddleware`, which sends the answer and then re-raises: uvicorn logs "Exception in
ASGI application" and closes the keep-alive connection, so the caller's next request on it is
reset. The 503 of a lost connection and the 400 of unstorable text are complete answers."""


def install(app: FastAPI) -> None:
    app.add_exception_handler(CertforgeError, _on_certforge_error)
    app.add_exception_handler(AcmeProblem, _on_acme_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for kind in _DATABASE_ERRORS:
        app.add_exception_handler(kind, _on_unexpected)
    app.add_exception_handler(Exception, _on_unexpected)
