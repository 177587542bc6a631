"""Validation errors worded to be acted on: where the JSON broke, which field was meant, what
shape a SAN has, and that the body must be JSON."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from certforge.api.schemas.cas import CACreate
from certforge.api.schemas.certificates import CertificateRequestCreate
from certforge.api.validation_messages import (
    explain,
    is_json_media_type,
    json_syntax_error,
    suggestion,
)


@pytest.mark.parametrize(
    ("document", "position", "line", "column"),
    [
        pytest.param('{"a": }', 6, 1, 7, id="ok/first-line"),
        pytest.param('{\n  "slug": "x",\n  "name": \n}', 28, 4, 1, id="ok/later-line"),
        pytest.param(b'{\n  "a": 1,,\n}', 11, 2, 10, id="ok/bytes"),
        pytest.param("", 0, 1, 1, id="ok/empty"),
        pytest.param("{", 99, 1, 2, id="ok/position-past-the-end"),
    ],
)
def test_json_syntax_error_names_line_and_column(
    document: str | bytes, position: int, line: int, column: int
) -> None:
    found = json_syntax_error(document, position, "Expecting value")
    assert (found.line, found.column) == (line, column)
    assert found.message() == f"not valid JSON at line {line}, column {column}: Expecting value"


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        pytest.param(None, True, id="ok/none-is-parsed-as-json"),
        pytest.param("application/json", True, id="ok/json"),
        pytest.param("application/json; charset=utf-8", True, id="ok/json-with-charset"),
        pytest.param("application/merge-patch+json", True, id="ok/structured-suffix"),
        pytest.param("application/x-www-form-urlencoded", False, id="fail/form"),
        pytest.param("text/plain", False, id="fail/text"),
        pytest.param("text/json", False, id="fail/text-json"),
    ],
)
def test_json_media_types(content_type: str | None, json: bool) -> None:
    assert is_json_media_type(content_type) is json


@pytest.mark.parametrize(
    ("name", "known", "expected"),
    [
        pytest.param("validity", ["ttl", "profile"], "ttl", id="ok/synonym"),
        pytest.param("Validity", ["ttl"], "ttl", id="ok/synonym-any-case"),
        pytest.param("validty", ["validity", "name"], "validity", id="ok/typo"),
        pytest.param("validity", ["name", "slug"], None, id="fail/synonym-not-here"),
        pytest.param("colour", ["name", "slug"], None, id="fail/nothing-close"),
        pytest.param("x", [], None, id="fail/no-known-fields"),
    ],
)
def test_suggestion(name: str, known: list[str], expected: str | None) -> None:
    assert suggestion(name, known) == expected


def _errors(model: type[BaseModel], body: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return [{**e, "loc": ("body", *e["loc"])} for e in caught.value.errors()]


def test_unknown_field_suggests_ours() -> None:
    body = {"profile": "web", "common_name": "a.example.com", "validity": "30d"}
    [error] = explain(_errors(CertificateRequestCreate, body), CertificateRequestCreate)
    assert error.field == "validity"
    assert error.message == "unknown field; did you mean `ttl`?"


def test_unknown_nested_field_suggests_from_the_nested_model() -> None:
    body = {
        "name": "root",
        "type": "root",
        "subject": {"common_name": "Root", "organisation": "Example"},
        "validity": "10y",
    }
    [error] = explain(_errors(CACreate, body), CACreate)
    assert error.field == "subject.organisation"
    assert error.message == "unknown field; did you mean `organization`?"


def test_san_as_a_string_explains_the_shape() -> None:
    body = {"profile": "web", "sans": ["www.example.com"]}
    [error] = explain(_errors(CertificateRequestCreate, body), CertificateRequestCreate)
    assert error.field == "sans.0"
    assert error.message.startswith('a SAN is an object {"type": "dns", "value": ')


def test_other_errors_keep_pydantic_wording_without_its_prefix() -> None:
    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")
        count: int

    [error] = explain(_errors(Body, {"count": "many"}), None)
    assert error.field == "count"
    assert "valid integer" in error.message
    [unknown] = explain(_errors(Body, {"count": 1, "colour": "red"}), None)
    assert unknown.message == "unknown field"
