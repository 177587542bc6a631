"""An application's audit events, filterable."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from certforge.api.ui.api_client import Problem
from certforge.api.ui.page import open_page

router = APIRouter()

OUTCOMES = ("success", "failed", "denied")


@router.get("/applications/{app}/audit", name="ui.audit")
async def audit(request: Request, app: str) -> Response:
    async with open_page(request) as page:
        q = request.query_params
        filters = {
            "action": q.get("action", "").strip(),
            "outcome": q.get("outcome", "") if q.get("outcome") in OUTCOMES else "",
            "resource_id": q.get("resource_id", "").strip(),
        }
        application = await page.api.get(f"/applications/{app}")
        response = await page.api.call(
            "GET",
            "/audit-events",
            params={"application": app, "limit": 200, **{k: v for k, v in filters.items() if v}},
        )
        problem = Problem.of(response) if response.is_error else None
        events = response.json()["items"] if problem is None else []
        return page.render(
            "audit.html",
            problem.status if problem else 200,
            problem,
            application=application,
            tab="audit",
            events=events,
            filters=filters,
            outcomes=OUTCOMES,
        )
