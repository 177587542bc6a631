"""The OpenAPI document names every error answer, and `Allow` names every method (issue 20,
defect 8). The app is only constructed: routing answers OPTIONS and 405 before any handler
needs the database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr

from certforge.api.app import create_app
from certforge.api.openapi import error_statuses
from certforge.api.settings import ApiSettings

UUID_ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(ApiSettings(leaf_keks=SecretStr("docs:" + "A" * 43 + "=")))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


@pytest_asyncio.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://certforge.test") as c:
        yield c


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_no_operation_documents_fastapis_validation_error(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "HTTPValidationError" not in str(document)


def test_every_operation_lists_its_problems(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        for status in error_statuses(path, method, operation):
            answer = responses.get(str(status))
            assert answer is not None, (method, path, status)
            content = answer.get("content", {})
            if path != "/healthz":
                assert "application/problem+json" in content, (method, path, status)
                schema = content["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("post", "/api/v1/cas", {400, 401, 403, 404, 409, 413, 415, 422, 503}),
        ("get", "/api/v1/applications/{app}", {400, 401, 403, 404, 422, 503}),
        ("get", "/api/v1/cas/{ca_id}/crl", {400, 404, 422, 503}),
        ("get", "/livez", set()),
    ],
)
def test_statuses_follow_the_shape_of_the_operation(
    document: dict[str, Any], method: str, path: str, expected: set[int]
) -> None:
    operation = document["paths"][path][method]
    assert error_statuses(path, method, operation) == expected
    assert {int(s) for s in operation["responses"] if s >= "4"} >= expected


async def test_options_names_every_method_of_every_resource(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    wrong = []
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", UUID_ZERO, path)
        response = await client.options(concrete)
        allowed = sorted(m.strip() for m in response.headers.get("allow", "").split(","))
        expected = sorted([m.upper() for m in operations] + ["OPTIONS"])
        if response.status_code != 204 or allowed != expected:
            wrong.append((path, response.status_code, allowed, expected))
    assert wrong == []


async def test_a_wrong_method_is_a_405_naming_every_allowed_method(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/api/v1/applications")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["allow"] == "GET, OPTIONS, POST"


async def test_options_on_an_unknown_path_is_a_404(client: httpx.AsyncClient) -> None:
    assert (await client.options("/api/v1/nothing-here")).status_code == 404


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _matches(schema: dict[str, Any], value: str) -> bool:
    return (
        len(value) >= schema.get("minLength", 0) and re.search(schema["pattern"], value) is not None
    )


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("90d", True), ("1d12h", True), ("99y", True), ("0d", False), ("1001y", False), ("", False)],
)
def test_the_document_offers_no_duration_the_server_refuses(
    document: dict[str, Any], value: str, accepted: bool
) -> None:
    validity = _schema(document, "CACreate")["properties"]["validity"]
    assert _matches(validity, value) is accepted


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("15m", True),
        ("24h", True),
        ("1440m", True),
        ("25h", False),
        ("1441m", False),
        ("1y", False),
    ],
)
def test_the_document_bounds_a_login_token_ttl_as_the_server_does(
    document: dict[str, Any], value: str, accepted: bool
) -> None:
    ttl = _schema(document, "JwtMethodConfig")["properties"]["token_ttl"]
    assert _matches(ttl, value) is accepted


def test_the_document_requires_what_the_server_requires(document: dict[str, Any]) -> None:
    subject = _schema(document, "CACreate")["properties"]["subject"]["$ref"].rsplit("/", 1)[1]
    assert "common_name" in _schema(document, subject)["required"]
    assert _schema(document, "RenewBody")["properties"]["csr"]["anyOf"][0]["minLength"] == 1
    algorithms = _schema(document, "JwtMethodConfig")["properties"]["algorithms"]
    assert algorithms["minItems"] == 1
    assert "none" not in algorithms["items"]["enum"]
    parameters = document["paths"]["/api/v1/certificates"]["get"]["parameters"]
    tag = next(p for p in parameters if p["name"] == "tag")["schema"]["anyOf"][0]["items"]
    assert [v for v in ("team", "team:web", "", ":web") if re.search(tag["pattern"], v)] == [
        "team",
        "team:web",
    ]
