"""The web console in Chromium: what issue 15 asks a person to be able to do, screen by screen.

Every screen visited is checked by axe-core (no violation of any rule it runs: labels,
contrast, landmarks, names of buttons and links...) and photographed into docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from admin_kit import (
    API,
    create_application,
    create_identity,
    create_intermediate,
    create_policy,
    create_profile,
    create_root,
    ok,
    put_member,
)
from harness import Backends

pytestmark = [pytest.mark.integration, pytest.mark.system]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass(frozen=True)
class Scene:
    url: str
    admin_token: str
    profile: str
    enrolled_app: str
    """API enrollment on (set up through the API)."""
    fresh_app: str
    """The same profile attached, enrollment off: configured through the console."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scene(api: httpx.AsyncClient, console_url: str, backends: Backends) -> Scene:
    root = await create_root(api, subject={"common_name": "Certforge Demo Root CA"})
    issuing = await create_intermediate(
        api, root["id"], subject={"common_name": "Certforge Demo Issuing CA"}
    )
    policy = await create_policy(api)
    profile = await create_profile(api, issuing["id"], policy["id"])
    enrolled = await create_application(api, name="Web shop")
    fresh = await create_application(api, name="Payments")
    for app, body in ((enrolled, {"api": {"enabled": True}}), (fresh, {})):
        ok(
            await api.put(
                f"{API}/applications/{app['slug']}/profiles/{profile['slug']}", json=body
            ),
            201,
        )
    return Scene(
        url=console_url,
        admin_token=backends.admin_token,
        profile=profile["slug"],
        enrolled_app=enrolled["slug"],
        fresh_app=fresh["slug"],
    )


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    opened = await context.new_page()
    opened.set_default_timeout(30_000)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors and CSP refusals; a form answered 4xx is logged too, but that is the
    # tests' own business ("Failed to load resource").
    opened.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield opened
    await context.close()
    assert errors == [], "the console's pages logged errors"


async def check_screen(page: Any, name: str) -> None:
    """axe-core finds nothing on the screen as it is now; then it is photographed."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    assert results.violations_count == 0, f"{name}: {results.generate_report()}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Any, scene: Scene, token: str | None = None) -> None:
    await page.goto(f"{scene.url}/ui/applications")
    await page.wait_for_url(re.compile(r"/ui/sign-in\?next="))
    await page.get_by_label("API token").fill(token or scene.admin_token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/ui/applications$"))


async def downloaded(page: Any, click: Any) -> bytes:
    async with page.expect_download() as info:
        await click()
    download = await info.value
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def open_request_dialog(page: Any, scene: Scene) -> Any:
    await page.goto(f"{scene.url}/ui/applications/{scene.enrolled_app}/requests")
    await page.get_by_role("link", name="Request", exact=True).click()
    dialog = page.get_by_role("dialog", name="Request a certificate")
    await dialog.wait_for()
    await dialog.get_by_label("Certificate profile").select_option(scene.profile)
    return dialog


async def wait_issued(page: Any) -> None:
    """The request page updates itself from pending to issued (no reload by the test)."""
    await page.wait_for_url(re.compile(r"/requests/[0-9a-f-]+\?new=1$"))
    await page.locator("#live .status-issued").wait_for()


async def test_sign_in_shows_my_applications_and_sign_out_ends_the_session(
    page: Any, scene: Scene
) -> None:
    await page.goto(f"{scene.url}/ui/applications")
    await page.wait_for_url(re.compile(r"/ui/sign-in"))
    await check_screen(page, "sign-in")
    await page.get_by_label("API token").fill("cf_wrong")
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#token-error").wait_for()
    await sign_in(page, scene)
    await page.get_by_role("link", name="Web shop").wait_for()
    await check_screen(page, "applications")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/ui/sign-in$"))
    await page.goto(f"{scene.url}/ui/applications")
    await page.wait_for_url(re.compile(r"/ui/sign-in\?next="))


async def test_configure_enrollment_from_the_settings_tab(page: Any, scene: Scene) -> None:
    await sign_in(page, scene)
    await page.goto(f"{scene.url}/ui/applications/{scene.fresh_app}/settings")
    await check_screen(page, "settings")
    await page.get_by_role("link", name=f"Configure {scene.profile}").click()
    await page.get_by_label("Enable API enrollment").check()
    await page.get_by_label("Auto-renewal by default").check()
    await page.get_by_label("Renew before (days)").fill("0")
    await page.get_by_role("button", name="Save").click()
    # The API refuses 0 days; its message stands beside the field, what was typed is kept.
    await page.locator("#renew_before_days-error").wait_for()
    assert await page.get_by_label("Renew before (days)").input_value() == "0"
    assert await page.get_by_label("Enable API enrollment").is_checked()
    await check_screen(page, "configure-enrollment")
    await page.get_by_label("Renew before (days)").fill("20")
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("Enrollment saved.").wait_for()
    row = page.get_by_role("row", name=re.compile(scene.profile))
    assert "20 days" in await row.inner_text()

    # An alert rule, refused first for its target (the API names `channels.0.url`).
    await page.get_by_label("Rule name").fill("expiring-soon")
    await page.get_by_label("Fires on").select_option("expiring")
    await page.get_by_label("Before expiry").fill("14d")
    await page.get_by_label("Channel").select_option("slack")
    await page.get_by_label("Send to").fill("not a url")
    await page.get_by_role("button", name="Add alert rule").click()
    await page.locator("#target-error").wait_for()
    assert await page.get_by_label("Rule name").input_value() == "expiring-soon"
    await page.get_by_label("Send to").fill("https://hooks.slack.com/services/T0/B0/XXXX")
    await page.get_by_role("button", name="Add alert rule").click()
    await page.get_by_text("Alert rules saved.").wait_for()
    await page.get_by_role("button", name="Turn off expiring-soon").click()
    await page.get_by_role("button", name="Turn on expiring-soon").wait_for()


async def test_request_a_managed_certificate_through_the_dialog_and_download_it(
    page: Any, scene: Scene
) -> None:
    await sign_in(page, scene)
    dialog = await open_request_dialog(page, scene)
    await dialog.get_by_label("Managed").check()
    await dialog.get_by_label("Common name").fill("shop.example.com")
    await dialog.get_by_label("Subject alternative names").fill("shop.example.com\n10.1.2.3")
    await dialog.get_by_label("Key algorithm").select_option("EC_P384")
    await dialog.get_by_label("TTL").fill("7d")
    await dialog.get_by_label("Metadata tags").fill("team=web")
    assert await dialog.get_by_label("CSR (PEM)").is_hidden()
    await check_screen(page, "request-dialog")
    await dialog.get_by_role("button", name="Request certificate").click()
    await wait_issued(page)

    key_pem = await downloaded(
        page, lambda: page.get_by_role("button", name="Download private key").click()
    )
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"
    await check_screen(page, "request-issued")

    await page.get_by_role("link", name="Open the certificate").click()
    await page.get_by_role("heading", name=re.compile("shop.example.com")).wait_for()
    await check_screen(page, "certificate")
    pem = await downloaded(page, lambda: page.get_by_role("link", name="Certificate (PEM)").click())
    certificate = x509.load_pem_x509_certificate(pem)
    assert certificate.public_key() == key.public_key()
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "shop.example.com"
    der = await downloaded(page, lambda: page.get_by_role("link", name="Certificate (DER)").click())
    assert x509.load_der_x509_certificate(der) == certificate
    bundle = await downloaded(page, lambda: page.get_by_role("link", name="Bundle").click())
    assert bundle.count(b"BEGIN CERTIFICATE") == 3

    await page.get_by_label("Password for the file").fill("correct horse battery")
    p12 = await downloaded(
        page, lambda: page.get_by_role("button", name="Download PKCS#12").click()
    )
    loaded = pkcs12.load_pkcs12(p12, b"correct horse battery")
    assert loaded.cert is not None
    assert loaded.cert.certificate == certificate

    # The key was offered once: the request's page, visited again, does not offer it.
    await page.go_back()
    await page.goto(page.url.replace("?new=1", ""))
    await page.locator("#live .status-issued").wait_for()
    assert await page.get_by_role("button", name="Download private key").count() == 0


async def test_request_a_certificate_from_a_pasted_csr(page: Any, scene: Scene) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.example.com")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("csr.example.com")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    await sign_in(page, scene)
    dialog = await open_request_dialog(page, scene)
    await dialog.get_by_label("CSR: paste").check()
    assert await dialog.get_by_label("Common name").is_hidden()
    await dialog.get_by_label("CSR (PEM)").fill(
        csr.public_bytes(serialization.Encoding.PEM).decode()
    )
    await dialog.get_by_label("TTL").fill("14d")
    await dialog.get_by_role("button", name="Request certificate").click()
    await wait_issued(page)
    assert await page.get_by_role("button", name="Download private key").count() == 0
    await page.get_by_role("link", name="Open the certificate").click()
    pem = await downloaded(page, lambda: page.get_by_role("link", name="Certificate (PEM)").click())
    assert x509.load_pem_x509_certificate(pem).public_key() == key.public_key()


async def test_a_policy_refusal_is_shown_at_the_field_it_names(page: Any, scene: Scene) -> None:
    await sign_in(page, scene)
    dialog = await open_request_dialog(page, scene)
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    dialog = await open_request_dialog(page, scene)
    await dialog.get_by_label("Common name").fill("www.forbidden.org")
    await dialog.get_by_label("Metadata tags").fill("team=web")
    await dialog.get_by_role("button", name="Request certificate").click()
    error = page.locator("#common_name-error")
    await error.wait_for()
    assert (await error.inner_text()).strip()
    field = page.get_by_label("Common name")
    assert await field.get_attribute("aria-invalid") == "true"
    assert await field.input_value() == "www.forbidden.org"
    assert await page.get_by_label("Metadata tags").input_value() == "team=web"
    await check_screen(page, "request-refused")


async def test_renew_then_revoke_with_a_reason_and_a_confirmation(
    page: Any, scene: Scene, api: httpx.AsyncClient
) -> None:
    issued = ok(
        await api.post(
            f"{API}/applications/{scene.enrolled_app}/certificate-requests",
            headers={"Prefer": "wait=10"},
            json={"profile": scene.profile, "common_name": "renew.example.com"},
        ),
        201,
    )
    first = issued["certificate"]["id"]
    await sign_in(page, scene)
    await page.goto(f"{scene.url}/ui/applications/{scene.enrolled_app}/certificates/{first}")
    await page.get_by_role("button", name="Renew now").click()
    await wait_issued(page)
    await page.get_by_role("link", name="Open the certificate").click()
    await page.get_by_role("link", name="previous certificate").wait_for()
    successor = page.url

    await page.get_by_role("link", name="Revoke…").click()
    await page.get_by_role("button", name="Revoke certificate").click()
    await page.locator("#confirm-error").wait_for()
    await page.get_by_label("Reason").select_option("keyCompromise")
    await page.get_by_label("Yes, revoke this certificate").check()
    await check_screen(page, "revoke")
    await page.get_by_role("button", name="Revoke certificate").click()
    await page.get_by_text("The certificate is revoked.").wait_for()
    assert page.url.startswith(successor)
    assert await page.locator("h2 .status-revoked").count() == 1
    assert await page.get_by_role("button", name="Renew now").count() == 0


async def test_certificates_search_audit_and_a_phone_width(
    page: Any, scene: Scene, api: httpx.AsyncClient
) -> None:
    for name in ("api.example.com", "cdn.example.com"):
        ok(
            await api.post(
                f"{API}/applications/{scene.enrolled_app}/certificate-requests",
                headers={"Prefer": "wait=10"},
                json={"profile": scene.profile, "common_name": name, "metadata": {"team": "edge"}},
            ),
            201,
        )
    await sign_in(page, scene)
    base = f"{scene.url}/ui/applications/{scene.enrolled_app}"
    await page.goto(f"{base}/certificates")
    await page.get_by_label("Name or SAN").fill("cdn.")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url(re.compile(r"q=cdn"))
    rows = page.locator("tbody tr")
    assert await rows.count() == 1
    assert "cdn.example.com" in await rows.first.inner_text()
    await page.goto(f"{base}/certificates?tag=team:edge&sort=not_after")
    assert await page.locator("tbody tr").count() == 2
    await page.goto(f"{base}/certificates")
    await check_screen(page, "certificates")
    await page.goto(f"{base}/requests")
    assert await page.get_by_role("columnheader", name="Requester").count() == 1
    await check_screen(page, "requests")
    await page.goto(f"{base}/audit")
    await page.get_by_label("Outcome").select_option("success")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r"outcome=success"))
    assert await page.locator("tbody tr").count() > 0
    await check_screen(page, "audit")

    await page.set_viewport_size(PHONE)
    await page.goto(f"{base}/certificates")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways at phone width"
    await check_screen(page, "certificates-phone")


async def test_product_admin_screens(page: Any, scene: Scene, api: httpx.AsyncClient) -> None:
    policy = await create_policy(api)
    await sign_in(page, scene)
    for path, name in (
        ("/ui/admin/cas", "admin-cas"),
        ("/ui/admin/policies", "admin-policies"),
        ("/ui/admin/profiles", "admin-profiles"),
        ("/ui/admin/identities", "admin-identities"),
    ):
        await page.goto(scene.url + path)
        await check_screen(page, name)
    # Edit a policy as JSON: a refusal names the field inside the document.
    await page.goto(f"{scene.url}/ui/admin/policies/{policy['id']}")
    document = page.get_by_label("Definition (JSON")
    await document.fill('{"max_validity": "forever"}')
    await page.get_by_role("button", name="Save").click()
    error = page.locator("#document-error")
    await error.wait_for()
    assert "max_validity" in await error.inner_text()
    await check_screen(page, "admin-policy-edit")
    assert "forever" in await page.get_by_label("Definition (JSON").input_value()
    await page.get_by_label("Definition (JSON").fill('{"description": "edited in the console"}')
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("Saved.").wait_for()
    edited = ok(await api.get(f"{API}/policies/{policy['id']}"))
    assert edited["description"] == "edited in the console"

    await page.goto(f"{scene.url}/ui/admin/identities")
    await page.get_by_label("Name").fill("console-made")
    await page.get_by_role("button", name="Create identity and token").click()
    token = await page.get_by_label("Token").input_value()
    assert token.startswith("cf_")
    await page.get_by_role("button", name="Disable console-made").click()
    row = page.get_by_role("row", name=re.compile("console-made"))
    await row.get_by_text("disabled").wait_for()


async def test_an_auditor_sees_only_what_the_role_allows(
    page: Any, scene: Scene, api: httpx.AsyncClient
) -> None:
    person = await create_identity(api)
    await put_member(api, scene.enrolled_app, person["id"], "auditor")
    await sign_in(page, scene, person["token"])
    await page.goto(f"{scene.url}/ui/applications/{scene.enrolled_app}/requests")
    assert await page.get_by_role("link", name="Request", exact=True).count() == 0
    # Keyboard: the first Tab reaches the skip link, shown with a visible focus ring.
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "[document.activeElement.textContent, getComputedStyle(document.activeElement)"
        ".outlineStyle, document.activeElement.getBoundingClientRect().left]"
    )
    assert focused[0] == "Skip to content"
    assert focused[1] != "none"
    assert focused[2] >= 0
    assert await page.get_by_role("link", name="CAs").count() == 0
    await page.goto(f"{scene.url}/ui/applications/{scene.fresh_app}/requests")
    assert await page.get_by_role("heading", name="Not found").count() == 1


async def test_a_pending_request_updates_itself_in_the_viewers_time_zone(
    browser: Any, scene: Scene, api: httpx.AsyncClient, backends: Backends
) -> None:
    """A request held pending (in the database) shows so; once it is issued the page's live
    region changes by itself, without a reload. Times read in the browser's zone (Tokyo)."""
    import asyncpg

    issued = ok(
        await api.post(
            f"{API}/applications/{scene.enrolled_app}/certificate-requests",
            headers={"Prefer": "wait=10"},
            json={"profile": scene.profile, "common_name": "live.example.com"},
        ),
        201,
    )
    db = await asyncpg.connect(backends.database_url)
    context = await browser.new_context(viewport=DESKTOP, timezone_id="Asia/Tokyo")
    try:
        await db.execute(
            "UPDATE certificate_requests SET status = 'pending' WHERE id = $1",
            UUID(issued["id"]),
        )
        page = await context.new_page()
        page.set_default_timeout(30_000)
        await sign_in(page, scene)
        url = f"{scene.url}/ui/applications/{scene.enrolled_app}/requests/{issued['id']}"
        await page.goto(url)
        await page.get_by_text("this page updates itself").wait_for()
        assert "GMT+9" in await page.locator("time[data-local]").first.inner_text()
        await page.evaluate("window.stillTheSamePage = true")
        await db.execute(
            "UPDATE certificate_requests SET status = 'issued' WHERE id = $1", UUID(issued["id"])
        )
        await page.locator("#live .status-issued").wait_for()
        assert await page.evaluate("window.stillTheSamePage === true")
        assert await page.get_by_text("this page updates itself").count() == 0
    finally:
        await context.close()
        await db.close()


async def test_the_request_form_works_without_javascript(browser: Any, scene: Scene) -> None:
    context = await browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    try:
        page = await context.new_page()
        page.set_default_timeout(30_000)
        await sign_in(page, scene)
        await page.goto(f"{scene.url}/ui/applications/{scene.enrolled_app}/requests")
        await page.get_by_role("link", name="Request", exact=True).click()
        await page.wait_for_url(re.compile(r"/requests/new$"))
        await page.get_by_label("Certificate profile").select_option(scene.profile)
        await page.get_by_label("Common name").fill("nojs.example.com")
        await page.get_by_role("button", name="Request certificate").click()
        # Pending at first (the dialog does not wait here); a meta refresh reloads the page.
        await page.locator("#live .status-issued").wait_for()
        assert "UTC" in await page.locator("time[data-local]").first.inner_text()
    finally:
        await context.close()
