"""The shared REST client's error mapping (`certforge.cli.api`): which exit code each answer
gets and the one line a person reads. Responses are built directly (no transport): the mapping
is a pure function of status and body; the real server's answers are in test_cli_story.py."""

from __future__ import annotations

import httpx
import pytest

from certforge.cli.api import (
    NotFoundOrDenied,
    Problem,
    Refused,
    Unreachable,
    error_for_response,
    normalize_base_url,
)

REQUEST = httpx.Request("GET", "http://certforge.test/api/v1/me")


def problem_response(status: int, **body: object) -> httpx.Response:
    return httpx.Response(
        status,
        json={"type": "urn:certforge:problem:x", "status": status, **body},
        headers={"content-type": "application/problem+json"},
        request=REQUEST,
    )


@pytest.mark.parametrize(
    ("status", "kind", "exit_code"),
    [
        pytest.param(400, Refused, 3, id="ok/400-refused"),
        pytest.param(409, Refused, 3, id="ok/409-refused"),
        pytest.param(422, Refused, 3, id="ok/422-refused"),
        pytest.param(401, NotFoundOrDenied, 4, id="ok/401-denied"),
        pytest.param(403, NotFoundOrDenied, 4, id="ok/403-denied"),
        pytest.param(404, NotFoundOrDenied, 4, id="ok/404-not-found"),
        pytest.param(429, Unreachable, 5, id="ok/429-retry"),
        pytest.param(500, Unreachable, 5, id="ok/500-server"),
        pytest.param(503, Unreachable, 5, id="ok/503-server"),
    ],
)
def test_status_maps_to_exit_code(status: int, kind: type, exit_code: int) -> None:
    error = error_for_response(problem_response(status, title="T", detail="d"))

    assert type(error) is kind
    assert error.exit_code == exit_code


def test_message_is_title_and_detail_and_keeps_the_field_errors() -> None:
    errors = [{"field": "sans.0.value", "message": "not allowed by the policy"}]
    response = problem_response(
        422, title="Unprocessable content", detail="sans.0.value: …", errors=errors,
        request_id="abc",
    )  # fmt: skip

    error = error_for_response(response)

    assert error.message == "Unprocessable content: sans.0.value: …"
    assert error.problem is not None
    assert error.problem.errors == errors
    assert error.problem.code == "x"
    assert error.problem.request_id == "abc"


def test_401_says_how_to_fix_it() -> None:
    error = error_for_response(problem_response(401, title="Unauthenticated", detail="bad token"))

    assert error.message == "Unauthenticated: bad token (check the token: `certforge login`)"


def test_an_answer_that_is_not_a_problem_still_gives_one_line() -> None:
    response = httpx.Response(502, text="<html>Bad gateway</html>", request=REQUEST)

    error = error_for_response(response)

    assert isinstance(error, Unreachable)
    assert error.message == "Bad Gateway: HTTP 502 Bad Gateway"
    assert Problem.from_response(response).errors == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://127.0.0.1:8080/", "http://127.0.0.1:8080", id="ok/trailing-slash"),
        pytest.param(" https://ca.example.com ", "https://ca.example.com", id="ok/spaces"),
    ],
)
def test_base_url(url: str, expected: str) -> None:
    assert normalize_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("127.0.0.1:8080", id="fail/no-scheme"),
        pytest.param("ftp://ca.example.com", id="fail/not-http"),
        pytest.param("https://", id="fail/no-host"),
    ],
)
def test_base_url_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        normalize_base_url(url)
