"""The console's session and CSRF rules, over HTTP without a browser (fast).

Sign-in turns a token into a server-side session (an `api_tokens` row of kind `session`, stored
hashed) behind an HttpOnly cookie; every form needs the session's CSRF token; sign-out deletes
the row; an expired session sends the person to sign in and back; buttons follow roles.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_identity,
    every,
    ok,
    put_member,
    uid,
)
from certforge.api.auth import hash_token
from certforge.api.settings import ApiSettings
from certforge.api.ui import session as ui_session
from issuance_kit import enroll, issue

BASE = "http://certforge.test"


def console(api_app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url=BASE)


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


async def sign_in(browser: httpx.AsyncClient, token: str, next_path: str = "") -> httpx.Response:
    form = await browser.get("/ui/sign-in" + (f"?next={quote(next_path)}" if next_path else ""))
    assert form.status_code == 200
    return await browser.post(
        "/ui/sign-in",
        data={
            "token": token,
            "nonce": hidden(form.text, "nonce"),
            "next": hidden(form.text, "next"),
        },
    )


async def signed_in(api_app: Any, token: str) -> httpx.AsyncClient:
    browser = console(api_app)
    answer = await sign_in(browser, token)
    assert answer.status_code == 303, answer.text
    return browser


async def test_sign_in_makes_a_hashed_session_and_sign_out_ends_it(
    api_app: Any, admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    person = await create_identity(admin)
    browser = console(api_app)
    answer = await sign_in(browser, person["token"])
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/applications"
    cookie = answer.headers["set-cookie"]
    assert "certforge_session=" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/ui" in cookie
    session_token = browser.cookies["certforge_session"]
    assert session_token != person["token"]

    async with api_app.state.certforge.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (
            await conn.execute(
                text("SELECT kind, expires_at FROM api_tokens WHERE token_hash = :h"),
                {"h": hash_token(session_token)},
            )
        ).all()
    assert [r.kind for r in rows] == ["session"]
    assert rows[0].expires_at is not None

    page = await browser.get("/ui/applications")
    assert page.status_code == 200
    assert person["name"] in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    out = await browser.post("/ui/sign-out", data={"csrf": hidden(page.text, "csrf")})
    assert out.status_code == 303
    # The row is gone: the old cookie, replayed, and the token as a bearer both fail.
    replay = console(api_app)
    replay.cookies.set("certforge_session", session_token, domain="certforge.test", path="/ui")
    again = await replay.get("/ui/applications")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/ui/sign-in?next=")
    bearer = await anonymous.get(f"{API}/me", headers={"Authorization": f"Bearer {session_token}"})
    assert bearer.status_code == 401


async def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    api_app: Any, admin: httpx.AsyncClient, backends: Any
) -> None:
    browser = await signed_in(api_app, backends.admin_token)
    slug = uid("app")
    for csrf in (None, "0" * 64):
        data = {"slug": slug, "name": "Made by a forged form"}
        if csrf is not None:
            data["csrf"] = csrf
        refused = await browser.post("/ui/applications", data=data)
        assert refused.status_code == 403
        assert "Form expired" in refused.text
    assert (await admin.get(f"{API}/applications/{slug}")).status_code == 404

    page = await browser.get("/ui/applications")
    made = await browser.post(
        "/ui/applications",
        data={"slug": slug, "name": "Made properly", "csrf": hidden(page.text, "csrf")},
    )
    assert made.status_code == 303
    ok(await admin.get(f"{API}/applications/{slug}"))


async def test_sign_in_without_the_form_cookie_is_refused(api_app: Any, backends: Any) -> None:
    browser = console(api_app)
    refused = await browser.post(
        "/ui/sign-in", data={"token": backends.admin_token, "nonce": "guessed", "next": ""}
    )
    assert refused.status_code == 403
    assert "certforge_session" not in browser.cookies


async def test_a_bad_token_is_named_at_the_token_field(api_app: Any) -> None:
    browser = console(api_app)
    answer = await sign_in(browser, "cf_not-a-token")
    assert answer.status_code == 401
    assert re.search(r'id="f-token"[^>]*aria-invalid="true"', answer.text)
    assert 'id="token-error"' in answer.text


async def test_an_expired_session_signs_in_again_and_returns_to_the_page(
    api_app: Any, backends: Any
) -> None:
    browser = await signed_in(api_app, backends.admin_token)
    session_token = browser.cookies["certforge_session"]
    async with api_app.state.certforge.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            text(
                "UPDATE api_tokens SET expires_at = now() - interval '1 minute' "
                "WHERE token_hash = :h"
            ),
            {"h": hash_token(session_token)},
        )
    wanted = "/ui/applications?view=all"
    bounced = await browser.get(wanted)
    assert bounced.status_code == 303
    assert bounced.headers["location"] == f"/ui/sign-in?next={quote(wanted, safe='')}"
    back = await sign_in(browser, backends.admin_token, wanted)
    assert back.status_code == 303
    assert back.headers["location"] == wanted


async def test_next_never_leaves_the_console(api_app: Any, backends: Any) -> None:
    browser = console(api_app)
    answer = await sign_in(browser, backends.admin_token, "https://evil.example/")
    assert answer.headers["location"] == "/ui/applications"


@pytest.mark.parametrize(
    ("environment", "override", "secure"),
    [
        pytest.param("production", None, True, id="production"),
        pytest.param("development", None, False, id="development"),
        pytest.param("development", True, True, id="forced-on"),
    ],
)
def test_cookies_are_secure_outside_development(
    environment: str, override: bool | None, secure: bool
) -> None:
    from fastapi import Response
    from starlette.requests import Request

    settings = ApiSettings(
        environment=environment, ui_secure_cookies=override, leaf_keks="k:" + "A" * 43 + "="
    )

    class State:
        certforge = type("C", (), {"settings": settings})()

    app = type("App", (), {"state": State()})()
    request = Request({"type": "http", "app": app, "headers": []})
    response = Response()
    ui_session.set_session_cookie(response, request, "cf_x", 60)
    assert ("Secure" in response.headers["set-cookie"]) is secure


async def test_buttons_follow_the_role_and_an_auditor_sees_none(
    api_app: Any, admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    enrollment = await enroll(admin)
    issued = await issue(admin, enrollment, common_name="www.example.com")
    certificate_id = issued["certificate"]["id"]
    people = {}
    for role in ("auditor", "operator", "application-admin"):
        person = await create_identity(admin)
        await put_member(admin, enrollment.app, person["id"], role)
        people[role] = await signed_in(api_app, person["token"])
    base = f"/ui/applications/{enrollment.app}"

    async def pages(browser: httpx.AsyncClient) -> str:
        parts = []
        for path in (
            "/requests",
            "/settings",
            f"/certificates/{certificate_id}",
        ):
            r = await browser.get(base + path)
            assert r.status_code == 200, (path, r.text[:300])
            parts.append(r.text)
        return "\n".join(parts)

    auditor = await pages(people["auditor"])
    for action in (
        'data-opens="request-dialog"',
        "Renew now",
        "Revoke…",
        ">Configure<",
        "PKCS#12",
        "Add or change member",
    ):
        assert action not in auditor, action
    operator = await pages(people["operator"])
    for action in ('data-opens="request-dialog"', "Renew now", "Revoke…", "PKCS#12"):
        assert action in operator, action
    assert ">Configure<" not in operator
    app_admin = await pages(people["application-admin"])
    assert ">Configure<" in app_admin
    assert "Add or change member" in app_admin
    # The API still decides: the auditor's forged renew is refused there.
    page = await people["auditor"].get(f"{base}/certificates/{certificate_id}")
    refused = await people["auditor"].post(
        f"{base}/certificates/{certificate_id}/renew", data={"csrf": hidden(page.text, "csrf")}
    )
    assert refused.status_code == 403


async def test_an_application_admin_manages_members_from_settings(
    api_app: Any, admin: httpx.AsyncClient
) -> None:
    enrollment = await enroll(admin)
    boss, newcomer = await create_identity(admin), await create_identity(admin)
    await put_member(admin, enrollment.app, boss["id"], "application-admin")
    # An application admin adds only people it already works with (another application here).
    team = await create_application(admin)
    await put_member(admin, team["slug"], boss["id"], "auditor")
    await put_member(admin, team["slug"], newcomer["id"], "operator")
    browser = await signed_in(api_app, boss["token"])
    settings = f"/ui/applications/{enrollment.app}/settings"
    page = await browser.get(settings)
    csrf = hidden(page.text, "csrf")

    added = await browser.post(
        f"{settings}/members",
        data={"csrf": csrf, "identity_id": newcomer["id"], "role": "operator"},
    )
    assert added.status_code == 303
    members = await every(admin, f"{API}/applications/{enrollment.app}/members")
    assert {m["name"]: m["role"] for m in members}[newcomer["name"]] == "operator"

    refused = await browser.post(
        f"{settings}/members", data={"csrf": csrf, "identity_id": "nobody", "role": "operator"}
    )
    assert refused.status_code == 422
    assert 'id="identity_id-error"' in refused.text
    assert re.search(r'id="f-identity_id"[^>]*value="nobody"', refused.text)

    removed = await browser.post(
        f"{settings}/members", data={"csrf": csrf, "identity_id": newcomer["id"], "remove": "1"}
    )
    assert removed.status_code == 303
    members = await every(admin, f"{API}/applications/{enrollment.app}/members")
    assert newcomer["name"] not in {m["name"] for m in members}
