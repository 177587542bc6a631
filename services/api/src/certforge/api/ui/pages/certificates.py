"""Certificates: search, a certificate's page, downloads, renew, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from certforge.api.ui.api_client import ApiRefused, Problem
from certforge.api.ui.page import Page, open_page
from certforge.common.domain import CertificateStatus, RevocationReason

router = APIRouter()

DOWNLOADS = {
    "pem": ("pem", "application/x-pem-file", "crt.pem"),
    "chain": ("chain", "application/x-pem-file", "chain.pem"),
    "bundle": ("bundle", "application/x-pem-file", "bundle.pem"),
    "der": ("der", "application/pkix-cert", "cer"),
}
EXPIRY_WINDOWS = {"7d": 7, "30d": 30, "90d": 90}
SORTS = {
    "not_after": "Expiry, soonest first",
    "-not_after": "Expiry, latest first",
    "-created_at": "Newest first",
}


@router.get("/applications/{app}/certificates", name="ui.certificates")
async def certificate_list(request: Request, app: str) -> Response:
    async with open_page(request) as page:
        q = request.query_params
        filters = {
            "q": q.get("q", "").strip(),
            "status": q.get("status", ""),
            "profile": q.get("profile", ""),
            "tag": q.get("tag", "").strip(),
            "expires": q.get("expires", ""),
            "sort": q.get("sort", "not_after") if q.get("sort") in SORTS else "not_after",
        }
        application = await page.api.get(f"/applications/{app}")
        attached = await page.api.get(f"/applications/{app}/profiles")
        days = EXPIRY_WINDOWS.get(filters["expires"])
        response = await page.api.call(
            "GET",
            f"/applications/{app}/certificates",
            params={
                k: v
                for k, v in {
                    "q": filters["q"],
                    "status": filters["status"],
                    "profile": filters["profile"],
                    "tag": filters["tag"],
                    "sort": filters["sort"],
                    "expires_before": (page.now + timedelta(days=days)).isoformat()
                    if days
                    else None,
                    "limit": 100,
                }.items()
                if v
            },
        )
        problem = Problem.of(response) if response.is_error else None
        listing = response.json() if problem is None else {"items": [], "total": 0}
        return page.render(
            "certificates.html",
            problem.status if problem else 200,
            problem,
            application=application,
            tab="certificates",
            certificates=listing["items"],
            total=listing["total"],
            filters=filters,
            profiles=[a["profile"] for a in attached],
            statuses=[s.value for s in CertificateStatus],
            windows=EXPIRY_WINDOWS,
            sorts=SORTS,
        )


async def _certificate_page(
    page: Page,
    app: str,
    certificate_id: UUID,
    status: int = 200,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
    template: str = "certificate.html",
) -> Response:
    application = await page.api.get(f"/applications/{app}")
    certificate = await page.api.get(f"/applications/{app}/certificates/{certificate_id}")
    sync_states = []
    if template == "certificate.html":
        for sync in await page.api.every(f"/applications/{app}/syncs"):
            for state in await page.api.every(
                f"/applications/{app}/syncs/{sync['id']}/certificates"
            ):
                if state["certificate_id"] == str(certificate_id):
                    sync_states.append({"sync": sync, **state})
    events = await _events(page, application, certificate_id)
    return page.render(
        template,
        status,
        problem,
        application=application,
        tab="certificates",
        certificate=certificate,
        sync_states=sync_states,
        events=events,
        reasons=[r.value for r in RevocationReason],
        values=values or {},
    )


async def _events(page: Page, application: dict[str, Any], certificate_id: UUID) -> list[Any]:
    """The certificate's audit events, for those who may read the audit log (else none)."""
    try:
        found = await page.api.get(
            "/audit-events",
            application=application["slug"],
            resource_id=str(certificate_id),
            limit=50,
        )
    except ApiRefused:
        return []
    items: list[Any] = found["items"]
    return items


@router.get("/applications/{app}/certificates/{certificate_id}", name="ui.certificate")
async def certificate_detail(request: Request, app: str, certificate_id: UUID) -> Response:
    async with open_page(request) as page:
        return await _certificate_page(page, app, certificate_id)


@router.get("/applications/{app}/certificates/{certificate_id}/download/{kind}", name="ui.download")
async def download(request: Request, app: str, certificate_id: UUID, kind: str) -> Response:
    async with open_page(request) as page:
        if kind not in DOWNLOADS:
            return page.render("error.html", 404, title="Not found", detail="no such download")
        path, media_type, suffix = DOWNLOADS[kind]
        response = await page.api.call(
            "GET", f"/applications/{app}/certificates/{certificate_id}/{path}"
        )
        if response.is_error:
            problem = Problem.of(response)
            return page.render(
                "error.html", problem.status, title="Download", detail=problem.detail
            )
        return _attachment(response.content, media_type, f"{certificate_id}.{suffix}")


@router.post("/applications/{app}/certificates/{certificate_id}/pkcs12", name="ui.pkcs12")
async def download_pkcs12(request: Request, app: str, certificate_id: UUID) -> Response:
    async with open_page(request, form=True) as page:
        response = await page.api.call(
            "POST",
            f"/applications/{app}/certificates/{certificate_id}/pkcs12",
            json={
                "password": page.form.get("password", ""),
                "include_chain": page.form.get("include_chain") == "on",
            },
        )
        if response.is_error:
            return await _certificate_page(
                page, app, certificate_id, response.status_code, Problem.of(response)
            )
        return _attachment(response.content, "application/pkcs12", f"{certificate_id}.p12")


@router.post("/applications/{app}/certificates/{certificate_id}/renew", name="ui.renew")
async def renew(request: Request, app: str, certificate_id: UUID) -> Response:
    async with open_page(request, form=True) as page:
        wait = page.api_wait
        renewed, problem = await page.api.send(
            "POST",
            f"/applications/{app}/certificates/{certificate_id}/renew",
            {},
            headers={"Prefer": f"wait={wait}"} if wait else None,
        )
        if problem is not None:
            return await _certificate_page(page, app, certificate_id, problem.status, problem)
        return RedirectResponse(f"/ui/applications/{app}/requests/{renewed['id']}?new=1", 303)


@router.get("/applications/{app}/certificates/{certificate_id}/revoke", name="ui.revoke.confirm")
async def revoke_confirm(request: Request, app: str, certificate_id: UUID) -> Response:
    """The confirmation step: a reason, and a box to tick."""
    async with open_page(request) as page:
        return await _certificate_page(page, app, certificate_id, template="revoke.html")


@router.post("/applications/{app}/certificates/{certificate_id}/revoke", name="ui.revoke")
async def revoke(request: Request, app: str, certificate_id: UUID) -> Response:
    async with open_page(request, form=True) as page:
        values = {"reason": page.form.get("reason", ""), "confirm": page.form.get("confirm", "")}
        if values["confirm"] != "on":
            unconfirmed = Problem(422, "Tick the box to confirm.", {"confirm": "confirm to revoke"})
            return await _certificate_page(
                page, app, certificate_id, 422, unconfirmed, values, "revoke.html"
            )
        _, problem = await page.api.send(
            "POST",
            f"/applications/{app}/certificates/{certificate_id}/revoke",
            {"reason": values["reason"]},
        )
        if problem is not None:
            return await _certificate_page(
                page, app, certificate_id, problem.status, problem, values, "revoke.html"
            )
        return RedirectResponse(
            f"/ui/applications/{app}/certificates/{certificate_id}?notice=revoked", 303
        )


def _attachment(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
