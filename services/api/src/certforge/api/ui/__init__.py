"""The web console: server-rendered pages under `/ui` that speak the REST API in process.

`install(app)` is the one line `create_app` calls: the pages (left out of the OpenAPI
document; they are not API), their static files, and what a page does when the session is
gone (sign in and come back), a read is refused (the problem, as a page) or a form lacks its
CSRF token (refused before anything happens).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from certforge.api.ui.api_client import ApiRefused, SessionExpired
from certforge.api.ui.page import CsrfRefused, html_error
from certforge.api.ui.pages import (
    admin,
    applications,
    audit,
    auth,
    certificates,
    requests,
    settings,
)

PREFIX = "/ui"


def install(app: FastAPI) -> None:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    for module in (auth, applications, requests, certificates, settings, audit, admin):
        router.include_router(module.router)
    app.include_router(router)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="ui.static",
    )
    app.add_exception_handler(SessionExpired, _sign_in_again)
    app.add_exception_handler(ApiRefused, _refused)
    app.add_exception_handler(CsrfRefused, _csrf_refused)


async def _sign_in_again(request: Request, _: Exception) -> Response:
    """Back to sign-in, then to this page (for a form: the page the form was on)."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        referer = urlsplit(request.headers.get("referer", ""))
        back = referer.path + (f"?{referer.query}" if referer.query else "")
    return RedirectResponse(f"{PREFIX}/sign-in?next={quote(back, safe='')}", status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiRefused)
    titles = {403: "Not allowed", 404: "Not found"}
    return html_error(
        request, exc.problem.status, titles.get(exc.problem.status, "Refused"), exc.problem.detail
    )


async def _csrf_refused(request: Request, _: Exception) -> Response:
    return html_error(
        request, 403, "Form expired", "This form was not sent from this session. Reload the page."
    )
