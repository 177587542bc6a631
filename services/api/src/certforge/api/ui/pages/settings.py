"""An application's Settings: attached profiles and their Configure form, members, syncs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from certforge.api.schemas.acme import AcmeEnrollment
from certforge.api.ui import forms
from certforge.api.ui.api_client import ApiRefused, Problem
from certforge.api.ui.page import Page, open_page
from certforge.common.alerts import AlertEvent
from certforge.common.domain import Role

router = APIRouter()


async def _settings_page(
    page: Page,
    app: str,
    status: int = 200,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    application = await page.api.get(f"/applications/{app}")
    attached = await page.api.get(f"/applications/{app}/profiles")
    members = await page.api.every(f"/applications/{app}/members")
    syncs = await page.api.every(f"/applications/{app}/syncs")
    states: dict[str, dict[str, int]] = {}
    for sync in syncs:
        counts: dict[str, int] = {}
        for state in await page.api.every(f"/applications/{app}/syncs/{sync['id']}/certificates"):
            counts[state["status"]] = counts.get(state["status"], 0) + 1
        states[sync["id"]] = counts
    try:
        alerts = await page.api.every(f"/applications/{app}/alerts")
    except ApiRefused:
        alerts = []
    identities: list[Any] = []
    if page.actor.is_product_admin:
        identities = await page.api.every("/identities")
    return page.render(
        "settings.html",
        status,
        problem,
        application=application,
        tab="settings",
        attached=attached,
        members=members,
        syncs=syncs,
        sync_states=states,
        alerts=alerts,
        roles=[r.value for r in Role],
        alert_events=[e.value for e in AlertEvent],
        channel_types=forms.CHANNEL_TYPES,
        identities=identities,
        values=values or {},
    )


@router.get("/applications/{app}", name="ui.application")
async def application_home(app: str) -> Response:
    return RedirectResponse(f"/ui/applications/{app}/requests", 303)


@router.get("/applications/{app}/settings", name="ui.settings")
async def settings(request: Request, app: str) -> Response:
    async with open_page(request) as page:
        return await _settings_page(page, app)


async def _configure_page(
    page: Page,
    app: str,
    profile: str,
    status: int = 200,
    problem: Problem | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    application = await page.api.get(f"/applications/{app}")
    attachment = await page.api.get(f"/applications/{app}/profiles/{profile}")
    if values is None:
        values = {
            "api_enabled": attachment["api"]["enabled"],
            "auto_renew": attachment["api"]["auto_renew"],
            "renew_before_days": attachment["api"]["renew_before_days"],
            "acme_enabled": attachment["acme"]["enabled"],
            "eab_required": attachment["acme"].get("eab_required", False),
        }
    return page.render(
        "configure.html",
        status,
        problem,
        application=application,
        tab="settings",
        attachment=attachment,
        values=values,
    )


@router.get("/applications/{app}/settings/profiles/{profile}", name="ui.configure")
async def configure(request: Request, app: str, profile: str) -> Response:
    async with open_page(request) as page:
        return await _configure_page(page, app, profile)


@router.post("/applications/{app}/settings/profiles/{profile}", name="ui.configure.submit")
async def configure_submit(request: Request, app: str, profile: str) -> Response:
    """API and ACME enrollment in one PUT; ACME's other settings are kept as they are."""
    async with open_page(request, form=True) as page:
        body = forms.api_enrollment({**page.form, "acme_present": "1"})
        current = await page.api.get(f"/applications/{app}/profiles/{profile}")
        kept = {k: v for k, v in current["acme"].items() if k in AcmeEnrollment.model_fields}
        body["acme"] = {**kept, **body["acme"]}
        _, problem = await page.api.send("PUT", f"/applications/{app}/profiles/{profile}", body)
        if problem is not None:
            values = {
                "api_enabled": page.form.get("api_enabled") == "on",
                "auto_renew": page.form.get("auto_renew") == "on",
                "renew_before_days": page.form.get("renew_before_days", ""),
                "acme_enabled": page.form.get("acme_enabled") == "on",
                "eab_required": page.form.get("eab_required") == "on",
            }
            return await _configure_page(page, app, profile, problem.status, problem, values)
        return RedirectResponse(f"/ui/applications/{app}/settings?notice=configured", 303)


@router.post("/applications/{app}/settings/members", name="ui.members.put")
async def put_member(request: Request, app: str) -> Response:
    async with open_page(request, form=True) as page:
        identity = page.form.get("identity_id", "").strip()
        if page.form.get("remove") == "1":
            _, problem = await page.api.send("DELETE", f"/applications/{app}/members/{identity}")
        else:
            _, problem = await page.api.send(
                "PUT",
                f"/applications/{app}/members/{identity or '-'}",
                {"role": page.form.get("role", "")},
            )
        if problem is not None:
            return await _settings_page(page, app, problem.status, problem, page.form)
        return RedirectResponse(f"/ui/applications/{app}/settings?notice=members", 303)


@router.post("/applications/{app}/settings/profiles", name="ui.attach")
async def attach(request: Request, app: str) -> Response:
    """Product admins attach a profile (enrollment off until configured)."""
    async with open_page(request, form=True) as page:
        profile = page.form.get("profile", "").strip() or "-"
        _, problem = await page.api.send("PUT", f"/applications/{app}/profiles/{profile}")
        if problem is not None:
            return await _settings_page(page, app, problem.status, problem, page.form)
        return RedirectResponse(f"/ui/applications/{app}/settings/profiles/{profile}", 303)


@router.post("/applications/{app}/settings/alerts", name="ui.alerts.create")
async def create_alert(request: Request, app: str) -> Response:
    async with open_page(request, form=True) as page:
        _, problem = await page.api.send(
            "POST", f"/applications/{app}/alerts", forms.alert_rule(page.form)
        )
        if problem is not None:
            return await _settings_page(page, app, problem.status, problem, page.form)
        return RedirectResponse(f"/ui/applications/{app}/settings?notice=alerts#alerts", 303)


@router.post("/applications/{app}/settings/alerts/{alert_id}", name="ui.alerts.toggle")
async def toggle_alert(request: Request, app: str, alert_id: str) -> Response:
    """Turn a rule on or off (`enabled` in the form)."""
    async with open_page(request, form=True) as page:
        _, problem = await page.api.send(
            "PATCH",
            f"/applications/{app}/alerts/{alert_id}",
            {"enabled": page.form.get("enabled") == "true"},
        )
        if problem is not None:
            return await _settings_page(page, app, problem.status, problem)
        return RedirectResponse(f"/ui/applications/{app}/settings?notice=alerts#alerts", 303)
