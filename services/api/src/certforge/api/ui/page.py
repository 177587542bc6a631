"""What every console page has: the person, their API client, the CSRF token, rendering.

The buttons a page shows follow the person's roles, decided by the API's own role sets
(`OPERATE_ROLES`, `ADMIN_ROLES`); hiding a button is a courtesy, the API still refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from certforge.api.auth import Actor
from certforge.api.domain.common import ADMIN_ROLES, OPERATE_ROLES
from certforge.api.ui import display, session
from certforge.api.ui.api_client import ConsoleApi, Problem, SessionExpired
from certforge.common.domain import Role

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.globals["certificate_state"] = display.certificate_state

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class CsrfRefused(Exception):
    """A form arrived without this session's CSRF token."""


@dataclass
class Page:
    request: Request
    api: ConsoleApi
    token: str
    me: dict[str, Any]
    form: dict[str, str] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def actor(self) -> Actor:
        return Actor(
            identity_id=UUID(self.me["id"]),
            name=self.me["name"],
            is_product_admin=self.me["product_admin"],
            roles={UUID(m["application_id"]): Role(m["role"]) for m in self.me["memberships"]},
        )

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.token)

    @property
    def api_wait(self) -> int:
        """Seconds the Request dialog waits for its certificate (`Prefer: wait`)."""
        wait: int = self.request.app.state.certforge.settings.ui_request_wait_seconds
        return wait

    def role_in(self, application: dict[str, Any]) -> str:
        if self.actor.is_product_admin:
            return "product-admin"
        role = self.actor.role_in(UUID(application["id"]))
        return role.value if role else ""

    def can_operate(self, application: dict[str, Any]) -> bool:
        """Request, renew, revoke, download keys: application admins and operators."""
        actor = self.actor
        return actor.is_product_admin or actor.role_in(UUID(application["id"])) in OPERATE_ROLES

    def can_administer(self, application: dict[str, Any]) -> bool:
        """Configure enrollment, members, syncs: application admins."""
        actor = self.actor
        return actor.is_product_admin or actor.role_in(UUID(application["id"])) in ADMIN_ROLES

    def render(
        self, template: str, status: int = 200, problem: Problem | None = None, **context: Any
    ) -> Response:
        return render(
            self.request,
            template,
            status,
            page=self,
            me=self.me,
            csrf=self.csrf,
            problem=problem,
            when=lambda value: display.moment(value, self.now),
            **context,
        )


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("page", None)
    context.setdefault("problem", None)
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def html_error(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    response = render(request, "error.html", status, title=title, detail=detail)
    assert isinstance(response, HTMLResponse)
    return response


@asynccontextmanager
async def open_page(request: Request, *, form: bool = False) -> AsyncIterator[Page]:
    """The signed-in person's page; no session (or an expired one) raises `SessionExpired`,
    which sends them to sign in and back. A form without this session's CSRF token raises
    `CsrfRefused` before anything is called."""
    token = request.cookies.get(session.SESSION_COOKIE)
    if not token:
        raise SessionExpired
    fields: dict[str, str] = {}
    if form:
        data = await request.form()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        if not session.csrf_ok(token, fields.get("csrf")):
            raise CsrfRefused
    async with ConsoleApi(request, token) as api:
        me = await api.get("/me")
        yield Page(request=request, api=api, token=token, me=me, form=fields)
