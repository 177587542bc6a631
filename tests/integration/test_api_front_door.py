"""What a person meets first: `GET /`, the interactive docs (offline, with "Authorize"), and an
OpenAPI document whose operations read as sentences."""

from __future__ import annotations

import httpx

from certforge.api.summaries import SUMMARIES


async def test_index_links_to_docs_and_health(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Certforge API"
    assert body["links"]["docs"] == "/docs"
    for link in body["links"].values():
        assert (await anonymous.get(link)).status_code == 200, link


async def test_docs_are_served_from_our_own_files(anonymous: httpx.AsyncClient) -> None:
    """No CDN: every script and style the page loads comes from this server."""
    for page, assets in {
        "/docs": ("swagger-ui-bundle.js", "swagger-ui.css"),
        "/redoc": ("redoc.standalone.js",),
    }.items():
        html = (await anonymous.get(page)).text
        assert "cdn" not in html.lower(), page
        assert "googleapis" not in html, page
        for asset in assets:
            url = f"/static-offline-docs/{asset}"
            assert url in html, (page, asset)
            response = await anonymous.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > 10_000, url


async def test_openapi_declares_bearer_auth_on_protected_operations(
    anonymous: httpx.AsyncClient,
) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    protected = document["paths"]["/api/v1/cas"]["post"]
    assert protected["security"] == [{"bearer": []}]
    public = document["paths"]["/api/v1/cas/{ca_id}/crl"]["get"]
    assert "security" not in public


async def test_every_operation_has_a_readable_summary(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    readable = set(SUMMARIES.values())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") in readable, f"{method.upper()} {path}"


async def test_authorize_token_reaches_the_api(
    anonymous: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """What "Authorize" sends is what the API checks; its errors still say what is wrong."""
    assert (await admin.get("/api/v1/me")).status_code == 200
    missing = await anonymous.get("/api/v1/me")
    assert missing.status_code == 401
    assert "Bearer" in missing.json()["detail"]
    wrong_scheme = await anonymous.get("/api/v1/me", headers={"Authorization": "Basic eDp5"})
    assert wrong_scheme.status_code == 401
    assert "Bearer <token>" in wrong_scheme.json()["detail"]
