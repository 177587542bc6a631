"""The OpenAPI document as the API really answers: every error an operation can give, as the
problem document `problems.py` writes.

FastAPI documents only the success status and a 422 shaped as its own `HTTPValidationError`,
which this API never sends. Rather than repeat `responses=` on a hundred routes (and forget it on
the next one), `complete` reads each generated operation and adds the answers its shape allows:

- 400 (malformed JSON, text PostgreSQL cannot store, a bad cursor) and 422 (validation) wherever
  the operation takes parameters or a body;
- 413 (over `max_body_bytes`) and 415 (not JSON) wherever it takes a body;
- 401 and 403 wherever it needs a bearer token, 409 on the changes among those;
- 412 wherever it takes `If-Match` (a lost update);
- 404 wherever the path names something, or the body or a filter may (`parent_ca_id`,
  `?application=`, …);
- 503 (the database connection was lost; retry) everywhere but the health and index routes,
  which never touch the database.

Each is `application/problem+json` with the `Problem` schema. Answers a route declares itself
keep their description; they only gain the problem content when they declare none.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from certforge.api.problems import PROBLEM_JSON, title_of

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document; `errors` names the fields at fault.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:certforge:problem:validation"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_NO_DATABASE = {"/", "/livez", "/metrics", "/healthz"}
_CHANGES = {"post", "put", "patch", "delete"}
_REFERENCES = {"application", "profile"}
"""Query filters that name a resource, answered 404 when it is not there (or not visible)."""
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses `operation` (`method` on `path`) can answer, from its shape."""
    statuses: set[int] = set()
    takes_body = "requestBody" in operation
    if takes_body or operation.get("parameters"):
        statuses |= {400, 422}
    if takes_body:
        statuses |= {413, 415}
    if operation.get("security"):
        statuses |= {401, 403}
        if method in _CHANGES:
            statuses.add(409)
    headers = {
        p.get("name", "").lower()
        for p in operation.get("parameters", [])
        if p.get("in") == "header"
    }
    if "if-match" in headers:
        statuses.add(412)  # the object changed since the version the caller read
    names = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
    if "{" in path or takes_body or names & _REFERENCES:
        statuses.add(404)  # the path's resource, or one the body or a filter refers to
    if path not in _NO_DATABASE:
        statuses.add(503)
    return statuses


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every operation's error answers and FastAPI's own 422 schema gone."""
    done = copy.deepcopy(document)
    for path, operations in done.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(path, method, operation)):
                answer = responses.setdefault(str(status), {"description": title_of(status)})
                if status == 422 or "content" not in answer:
                    answer["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
                if status == 422:
                    answer["description"] = "the body or a parameter is invalid"
    schemas = done.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return done


def install(app: FastAPI) -> None:
    """Serve the completed document (built once, on the first request for it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
