"""Sign in with a token, sign out; where a person lands after either."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from certforge.api.context import ApiContext
from certforge.api.ui import session
from certforge.api.ui.api_client import Problem
from certforge.api.ui.page import html_error, render
from certforge.common.errors import Unauthenticated

router = APIRouter()

HOME = "/ui/applications"


def safe_next(target: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return HOME


@router.get("/sign-in", name="ui.sign_in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    nonce = session.sign_in_nonce()
    response = render(request, "sign_in.html", nonce=nonce, next=safe_next(next), expired=False)
    session.set_sign_in_cookie(response, request, nonce)
    return response


@router.post("/sign-in", name="ui.sign_in.submit")
async def sign_in(
    request: Request,
    token: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = HOME,
) -> Response:
    if not session.sign_in_ok(request.cookies.get(session.SIGN_IN_COOKIE), nonce):
        return html_error(
            request, 403, "Sign-in form expired", "Reload the sign-in page and try again."
        )
    context: ApiContext = request.app.state.certforge
    try:
        session_token = await session.start(
            context, token.strip(), datetime.now(UTC), getattr(request.state, "request_id", None)
        )
    except Unauthenticated as exc:
        fresh = session.sign_in_nonce()
        response = render(
            request,
            "sign_in.html",
            401,
            nonce=fresh,
            next=safe_next(next),
            expired=False,
            problem=Problem(401, "That token does not sign you in.", {"token": exc.detail}),
        )
        session.set_sign_in_cookie(response, request, fresh)
        return response
    redirect = RedirectResponse(safe_next(next), status_code=303)
    session.set_session_cookie(
        redirect, request, session_token, context.settings.ui_session_minutes * 60
    )
    redirect.delete_cookie(session.SIGN_IN_COOKIE, path=session.COOKIE_PATH)
    return redirect


@router.post("/sign-out", name="ui.sign_out")
async def sign_out(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    token = request.cookies.get(session.SESSION_COOKIE)
    if token and not session.csrf_ok(token, csrf):
        return html_error(request, 403, "Form expired", "Reload the page and sign out again.")
    if token:
        await session.end(request.app.state.certforge, token)
    redirect = RedirectResponse("/ui/sign-in", status_code=303)
    session.clear_cookies(redirect, request)
    return redirect
