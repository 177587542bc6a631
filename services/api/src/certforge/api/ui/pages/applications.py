"""The applications a person can see; product admins create them here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from certforge.api.ui.page import open_page

router = APIRouter()

FIELDS = ("slug", "name", "description")


@router.get("/", name="ui.home")
async def home() -> Response:
    return RedirectResponse("/ui/applications", status_code=303)


@router.get("/applications", name="ui.applications")
async def applications(request: Request) -> Response:
    async with open_page(request) as page:
        apps = await page.api.every("/applications")
        return page.render("applications.html", applications=apps, values={})


@router.post("/applications", name="ui.applications.create")
async def create_application(request: Request) -> Response:
    async with open_page(request, form=True) as page:
        body = {k: page.form.get(k, "").strip() for k in FIELDS}
        created, problem = await page.api.send("POST", "/applications", body)
        if problem is None:
            return RedirectResponse(f"/ui/applications/{created['slug']}/settings", 303)
        apps = await page.api.every("/applications")
        return page.render(
            "applications.html", problem.status, problem, applications=apps, values=page.form
        )
