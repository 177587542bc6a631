"""Certificate Requests: the list, the Request dialog, a request that updates itself."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from certforge.api.ui import forms
from certforge.api.ui.api_client import ApiRefused, Problem
from certforge.api.ui.page import Page, open_page
from certforge.common.domain import KeyAlgorithm, RequestStatus, SignatureHash

router = APIRouter()

DIALOG_FIELDS = (
    "profile",
    "method",
    "common_name",
    "sans",
    "key_algorithm",
    "signature_algorithm",
    "ttl",
    "metadata",
    "csr",
)


async def _requests_page(
    page: Page,
    app: str,
    *,
    status: int = 200,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
    dialog_open: bool = False,
    standalone: bool = False,
) -> Response:
    application = await page.api.get(f"/applications/{app}")
    attached = await page.api.get(f"/applications/{app}/profiles")
    filters = {"status": page.request.query_params.get("status") or None}
    listing = await page.api.get(f"/applications/{app}/certificate-requests", **filters)
    requesters = await _requesters(page, app)
    return page.render(
        "request_new.html" if standalone else "requests.html",
        status,
        problem,
        application=application,
        tab="requests",
        requests=listing["items"],
        requesters=requesters,
        profiles=[a["profile"] for a in attached if a["api"]["enabled"]],
        key_algorithms=[k.value for k in KeyAlgorithm],
        signature_algorithms=[s.value for s in SignatureHash],
        statuses=[s.value for s in RequestStatus],
        filters=filters,
        values=values or {"method": "managed"},
        dialog_open=dialog_open,
        dialog_fields=DIALOG_FIELDS,
    )


async def _requesters(page: Page, app: str) -> dict[str, str] | None:
    """Who asked for each request, from the audit log's `certificate_request.create` entries
    (the request's API shape does not name its requester). Only those who may read the audit
    log get it; for the others (operators) the column is left out: None."""
    try:
        found = await page.api.get(
            "/audit-events", application=app, action="certificate_request.create", limit=1000
        )
    except ApiRefused:
        return None
    return {e["resource_id"]: e["actor_name"] for e in found["items"] if e["resource_id"]}


@router.get("/applications/{app}/requests", name="ui.requests")
async def request_list(request: Request, app: str) -> Response:
    async with open_page(request) as page:
        return await _requests_page(page, app)


@router.get("/applications/{app}/requests/new", name="ui.requests.new")
async def request_dialog(request: Request, app: str) -> Response:
    """The Request dialog as a page of its own (what the Request button opens without JS)."""
    async with open_page(request) as page:
        values = {"method": request.query_params.get("method") or "managed"}
        if request.query_params.get("profile"):
            values["profile"] = request.query_params["profile"]
        return await _requests_page(page, app, values=values, standalone=True)


@router.post("/applications/{app}/requests", name="ui.requests.create")
async def submit_request(request: Request, app: str) -> Response:
    """Send the dialog to the API, waiting a little for the certificate; a refusal re-opens
    the dialog with what was typed and each message beside its field."""
    async with open_page(request, form=True) as page:
        values = {k: page.form.get(k, "") for k in DIALOG_FIELDS}
        try:
            body = forms.certificate_request(values)
        except forms.FormError as exc:
            unparsed = Problem(422, "Check the highlighted field.", {exc.field: exc.message})
            return await _requests_page(
                page, app, status=422, problem=unparsed, values=values, standalone=True
            )
        wait = page.api_wait
        created, problem = await page.api.send(
            "POST",
            f"/applications/{app}/certificate-requests",
            body,
            headers={"Prefer": f"wait={wait}"} if wait else None,
        )
        if problem is not None:
            return await _requests_page(
                page, app, status=problem.status, problem=problem, values=values, standalone=True
            )
        return RedirectResponse(f"/ui/applications/{app}/requests/{created['id']}?new=1", 303)


@router.get("/applications/{app}/requests/{request_id}", name="ui.request")
async def request_detail(request: Request, app: str, request_id: UUID) -> Response:
    """While pending, the page refreshes itself (a script, or a meta refresh without one).
    Just after the dialog (`new=1`) an issued managed request offers its key, once."""
    async with open_page(request) as page:
        application = await page.api.get(f"/applications/{app}")
        found: dict[str, Any] = await page.api.get(
            f"/applications/{app}/certificate-requests/{request_id}"
        )
        certificate = found.get("certificate") or {}
        offer_key = (
            request.query_params.get("new") == "1"
            and found["status"] == "issued"
            and bool(certificate.get("private_key"))
            and page.can_operate(application)
        )
        return page.render(
            "request.html",
            application=application,
            tab="requests",
            found=found,
            offer_key=offer_key,
            pending=found["status"] == "pending",
        )


@router.post("/applications/{app}/certificates/{certificate_id}/private-key", name="ui.key")
async def download_key(request: Request, app: str, certificate_id: UUID) -> Response:
    """The managed key as a file (a POST: CSRF-checked, never cached, audited by the API)."""
    async with open_page(request, form=True) as page:
        response = await page.api.call(
            "GET", f"/applications/{app}/certificates/{certificate_id}/private-key"
        )
        if response.is_error:
            problem = Problem.of(response)
            return page.render("error.html", problem.status, title="Key", detail=problem.detail)
        return Response(
            response.content,
            media_type="application/x-pem-file",
            headers={
                "Content-Disposition": f'attachment; filename="{certificate_id}.key.pem"',
                "Cache-Control": "no-store",
            },
        )
