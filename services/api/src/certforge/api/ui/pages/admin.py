"""Product admins' screens: CAs, policies, profiles and identities.

Policies and profiles are rich documents (rules per SAN type, defaults, extensions), so their
forms edit the API's own JSON shape in a text area, pre-filled with the current document (or an
example); the API's refusal names the field inside it. CAs and identities have plain fields.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from certforge.api.schemas.policies import PolicyUpdate
from certforge.api.schemas.profiles import ProfileUpdate
from certforge.api.ui.api_client import Problem
from certforge.api.ui.page import Page, open_page
from certforge.common.domain import KeyAlgorithm

router = APIRouter(prefix="/admin")

EXAMPLES: dict[str, dict[str, Any]] = {
    "policies": {
        "name": "web",
        "subject": {"common_name": {"allowed": ["*.example.com"]}},
        "sans": {"dns": {"allowed": ["*.example.com"]}},
        "key_algorithms": ["EC_P256", "RSA_2048"],
        "max_validity": "90d",
    },
    "profiles": {
        "slug": "web-server",
        "ca_id": "<CA id>",
        "policy_id": "<policy id>",
        "defaults": {"ttl": "30d", "key_algorithm": "EC_P256"},
    },
}
EDITABLE = {"policies": PolicyUpdate.model_fields, "profiles": ProfileUpdate.model_fields}
TITLES = {"policies": "Policies", "profiles": "Profiles"}


def _admin_only(page: Page) -> Response | None:
    if page.actor.is_product_admin:
        return None
    return page.render(
        "error.html", 403, title="Forbidden", detail="This screen is for product admins."
    )


# --- CAs -------------------------------------------------------------------------------------


async def _cas_page(
    page: Page,
    status: int = 200,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    cas = await page.api.every("/cas")
    return page.render(
        "cas.html",
        status,
        problem,
        tab="cas",
        cas=cas,
        parents=[(ca["id"], ca["name"]) for ca in cas],
        key_algorithms=[k.value for k in KeyAlgorithm],
        values=values or {"type": "root", "validity": "10y", "key_algorithm": "EC_P256"},
    )


@router.get("/cas", name="ui.cas")
async def cas(request: Request) -> Response:
    async with open_page(request) as page:
        return _admin_only(page) or await _cas_page(page)


@router.post("/cas", name="ui.cas.create")
async def create_ca(request: Request) -> Response:
    async with open_page(request, form=True) as page:
        f = page.form
        body: dict[str, Any] = {
            "name": f.get("name", "").strip(),
            "type": f.get("type", ""),
            "subject": {"common_name": f.get("common_name", "").strip()},
            "key_algorithm": f.get("key_algorithm", ""),
            "validity": f.get("validity", "").strip(),
        }
        if f.get("organization", "").strip():
            body["subject"]["organization"] = f["organization"].strip()
        if f.get("type") == "intermediate":
            body["parent_ca_id"] = f.get("parent_ca_id", "")
        if f.get("max_path_length", "").strip():
            body["max_path_length"] = f["max_path_length"].strip()
        _, problem = await page.api.send("POST", "/cas", body)
        if problem is not None:
            return await _cas_page(page, problem.status, problem, f)
        return RedirectResponse("/ui/admin/cas?notice=created", 303)


@router.post("/cas/{ca_id}/{action}", name="ui.cas.toggle")
async def toggle_ca(request: Request, ca_id: str, action: str) -> Response:
    async with open_page(request, form=True) as page:
        if action not in ("enable", "disable"):
            return page.render("error.html", 404, title="Not found", detail="no such action")
        _, problem = await page.api.send("POST", f"/cas/{ca_id}/{action}")
        if problem is not None:
            return await _cas_page(page, problem.status, problem)
        return RedirectResponse("/ui/admin/cas", 303)


# --- identities ------------------------------------------------------------------------------


async def _identities_page(
    page: Page,
    status: int = 200,
    problem: Problem | None = None,
    values: dict[str, str] | None = None,
    created: dict[str, Any] | None = None,
) -> Response:
    return page.render(
        "identities.html",
        status,
        problem,
        tab="identities",
        identities=await page.api.every("/identities"),
        values=values or {},
        created=created,
    )


@router.get("/identities", name="ui.identities")
async def identities(request: Request) -> Response:
    async with open_page(request) as page:
        return _admin_only(page) or await _identities_page(page)


@router.post("/identities", name="ui.identities.create")
async def create_identity(request: Request) -> Response:
    """Renders the new token in the answer itself (never stored, never in a URL): shown once."""
    async with open_page(request, form=True) as page:
        body = {
            "name": page.form.get("name", "").strip(),
            "product_admin": page.form.get("product_admin") == "on",
        }
        created, problem = await page.api.send("POST", "/identities", body)
        if problem is not None:
            return await _identities_page(page, problem.status, problem, page.form)
        return await _identities_page(page, 201, created=created)


@router.post("/identities/{identity_id}/disable", name="ui.identities.disable")
async def disable_identity(request: Request, identity_id: str) -> Response:
    """Disable an identity: the API revokes its tokens, which ends its console sessions too."""
    async with open_page(request, form=True) as page:
        _, problem = await page.api.send("DELETE", f"/identities/{identity_id}")
        if problem is not None:
            return await _identities_page(page, problem.status, problem)
        return RedirectResponse("/ui/admin/identities?notice=updated", 303)


# --- policies and profiles: JSON documents ----------------------------------------------------


def _editable(kind: str, document: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in document.items() if k in EDITABLE[kind]}, indent=2)


async def _documents_page(
    page: Page,
    kind: str,
    status: int = 200,
    problem: Problem | None = None,
    document: str | None = None,
    editing: dict[str, Any] | None = None,
) -> Response:
    return page.render(
        "documents.html",
        status,
        problem,
        tab=kind,
        kind=kind,
        title=TITLES[kind],
        items=await page.api.every(f"/{kind}"),
        editing=editing,
        document=document
        if document is not None
        else (_editable(kind, editing) if editing else json.dumps(EXAMPLES[kind], indent=2)),
    )


def _inside_document(problem: Problem) -> Problem:
    """The API names fields inside the JSON (`sans.dns.allowed.0`); the form has one text
    area, so every message goes beside it, prefixed with the field it names."""
    if not problem.errors:
        return problem
    lines = "; ".join(f"{name}: {message}" for name, message in problem.errors.items())
    return Problem(problem.status, problem.detail, {"document": lines})


def _parse(text: str) -> tuple[Any, Problem | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, Problem(
            400, "Not JSON.", {"document": f"not JSON: {exc.msg} (line {exc.lineno})"}
        )


@router.get("/{kind}", name="ui.documents")
async def documents(request: Request, kind: str) -> Response:
    async with open_page(request) as page:
        if kind not in TITLES:
            return page.render("error.html", 404, title="Not found", detail="no such screen")
        return _admin_only(page) or await _documents_page(page, kind)


@router.post("/{kind}", name="ui.documents.create")
async def create_document(request: Request, kind: str) -> Response:
    async with open_page(request, form=True) as page:
        if kind not in TITLES:
            return page.render("error.html", 404, title="Not found", detail="no such screen")
        text = page.form.get("document", "")
        body, problem = _parse(text)
        if problem is None:
            _, problem = await page.api.send("POST", f"/{kind}", body)
        if problem is not None:
            problem = _inside_document(problem)
            return await _documents_page(page, kind, problem.status, problem, text)
        return RedirectResponse(f"/ui/admin/{kind}?notice=created", 303)


@router.get("/{kind}/{item}", name="ui.document")
async def edit_document(request: Request, kind: str, item: str) -> Response:
    async with open_page(request) as page:
        if kind not in TITLES:
            return page.render("error.html", 404, title="Not found", detail="no such screen")
        current = await page.api.get(f"/{kind}/{item}")
        return await _documents_page(page, kind, editing=current)


@router.post("/{kind}/{item}", name="ui.document.update")
async def update_document(request: Request, kind: str, item: str) -> Response:
    async with open_page(request, form=True) as page:
        if kind not in TITLES:
            return page.render("error.html", 404, title="Not found", detail="no such screen")
        current = await page.api.get(f"/{kind}/{item}")
        text = page.form.get("document", "")
        body, problem = _parse(text)
        if problem is None:
            _, problem = await page.api.send("PATCH", f"/{kind}/{item}", body)
        if problem is not None:
            problem = _inside_document(problem)
            return await _documents_page(page, kind, problem.status, problem, text, current)
        return RedirectResponse(f"/ui/admin/{kind}?notice=updated", 303)
