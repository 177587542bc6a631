"""Console sessions: a person's token buys a short-lived token of kind `session`.

The session is an ordinary `api_tokens` row (kind `session`, only its SHA-256 stored, expiring
after `ui_session_minutes` and never after the token it was made from), so the console calls the
API with it exactly as any client would: one authentication rule, one authorisation rule.
The cookie carries the session token (HttpOnly: no script can read it; SameSite=Lax; Secure
outside development). Signing out deletes the row, so a copied cookie is dead at once.

CSRF: every form carries HMAC(session token, "csrf"). Only a page rendered for this session can
know it, it needs no storage, and it changes with every sign-in. The sign-in form has no session
yet, so it uses a double-submit cookie instead (a random value in a cookie and in the form).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from fastapi import Request, Response
from sqlmodel import col, delete

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor, authenticate, hash_token, new_token, token_record
from certforge.api.context import ApiContext
from certforge.common.db.tables import ApiToken

SESSION_COOKIE = "certforge_session"
SIGN_IN_COOKIE = "certforge_sign_in"
SESSION_KIND = "session"
COOKIE_PATH = "/ui"
_CSRF_LABEL = b"certforge-console-csrf"


def csrf_token(session_token: str) -> str:
    """The CSRF token of the forms of one session."""
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(session_token), submitted or "")


def sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign_in_ok(cookie: str | None, submitted: str | None) -> bool:
    """The sign-in form's double submit: the cookie this browser got and the form's copy."""
    return bool(cookie) and bool(submitted) and hmac.compare_digest(cookie or "", submitted or "")


def session_expiry(now: datetime, minutes: int, token_expires_at: datetime | None) -> datetime:
    """A session never outlives the token it was made from (a short-lived access token)."""
    ends = now + timedelta(minutes=minutes)
    return ends if token_expires_at is None else min(ends, token_expires_at)


async def start(context: ApiContext, token: str, now: datetime, request_id: str | None) -> str:
    """Check `token` as the API would and create a session for its identity; returns the
    session token. Raises `Unauthenticated` for a token the API would refuse."""
    actor = await authenticate(context.db, f"Bearer {token}", now)
    expires = await context.db.fetchval(
        "SELECT expires_at FROM api_tokens WHERE token_hash = $1", hash_token(token)
    )
    session_token = new_token()
    record = token_record(
        actor.identity_id,
        session_token,
        session_expiry(now, context.settings.ui_session_minutes, expires),
    )
    record.kind = SESSION_KIND
    # Sessions that simply ran out are never signed out of: sweep this person's old ones.
    await context.db.execute(
        "DELETE FROM api_tokens WHERE identity_id = $1 AND kind = $2 AND expires_at <= $3",
        actor.identity_id,
        SESSION_KIND,
        now,
    )
    async with context.sessions() as db_session:
        db_session.add(record)
        AuditScope(actor, "ui.session.start", request_id).record(
            db_session, resource_type="identity", resource_id=actor.identity_id
        )
        await db_session.commit()
    return session_token


async def end(context: ApiContext, session_token: str) -> None:
    """Delete the session's row: the cookie, wherever it was copied to, stops working. Through
    the ORM, so that every api replica forgets what it cached about the token
    (`config_changes`)."""
    async with context.sessions() as db_session:
        await db_session.exec(
            delete(ApiToken).where(
                col(ApiToken.token_hash) == hash_token(session_token),
                col(ApiToken.kind) == SESSION_KIND,
            )
        )
        await db_session.commit()


async def actor_of(context: ApiContext, session_token: str, now: datetime) -> Actor:
    """The person behind a session token (what the API would see)."""
    return await authenticate(context.db, f"Bearer {session_token}", now)


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def set_sign_in_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_cookies(response: Response, request: Request) -> None:
    for name in (SESSION_COOKIE, SIGN_IN_COOKIE):
        response.delete_cookie(
            name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=_secure(request)
        )


def _secure(request: Request) -> bool:
    context: ApiContext = request.app.state.certforge
    return context.settings.ui_cookies_secure
