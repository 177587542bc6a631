"""What every ACME response carries: a fresh `Replay-Nonce` (RFC 8555 §6.5) and
`Link: <directory>;rel="index"` (§7.1), errors included."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from certforge.api.acme import nonces
from certforge.api.acme.errors import PROBLEM_JSON, AcmeProblem
from certforge.api.acme.urls import PREFIX, AcmeUrls
from certforge.api.context import ApiContext

log = logging.getLogger(__name__)


def context_of(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.certforge
    return context


def urls_of(request: Request) -> AcmeUrls | None:
    """The directory's URLs, from the route's path parameters or, for a path no route matched
    (an unknown resource), from the path itself."""
    application = request.path_params.get("application")
    profile = request.path_params.get("profile")
    if not isinstance(application, str) or not isinstance(profile, str):
        parts = request.url.path.removeprefix(PREFIX + "/").split("/")
        if not request.url.path.startswith(PREFIX + "/") or len(parts) < 2:
            return None
        application, profile = parts[0], parts[1]
    settings = context_of(request).settings
    return AcmeUrls.of(request, settings.acme_base_url, application, profile)


async def respond(
    request: Request,
    body: Mapping[str, Any] | bytes | None,
    status: int = 200,
    *,
    media_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    links: Sequence[str] = (),
) -> Response:
    """An ACME response with its nonce and links; `links` are full `<url>;rel="…"` values."""
    context = context_of(request)
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    else:
        content = orjson.dumps(body)
    response = Response(content, status, headers=dict(headers or {}), media_type=media_type)
    nonce = await nonces.issue(
        context.db, datetime.now(UTC), context.settings.acme_nonce_lifetime_seconds
    )
    response.headers["Replay-Nonce"] = nonce
    response.headers["Cache-Control"] = response.headers.get("Cache-Control", "no-store")
    urls = urls_of(request)
    if urls is not None:
        response.headers.append("Link", f'<{urls.directory}>;rel="index"')
    for link in links:
        response.headers.append("Link", link)
    return response


async def problem_response(request: Request, exc: AcmeProblem) -> Response:
    """The exception handler's answer (see `certforge.api.problems`)."""
    try:
        return await respond(
            request, exc.document(), exc.status, media_type=PROBLEM_JSON, headers=exc.headers
        )
    except Exception:
        # No nonce without the database; the problem itself must still reach the client.
        log.exception("could not issue a nonce for an ACME problem")
        return Response(orjson.dumps(exc.document()), exc.status, media_type=PROBLEM_JSON)
