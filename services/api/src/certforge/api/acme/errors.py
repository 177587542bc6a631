"""The one typed error of the ACME endpoints and its response.

Handlers and domain functions raise `AcmeProblem`; the exception handler installed by
`certforge.api.problems` answers it as an ACME problem document (RFC 8555 §6.7), with the
`Replay-Nonce` and `Link: rel="index"` every ACME response carries. Statuses live here at the
edge, as for the REST API's errors, and the detail never carries a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certforge.common.acme import ErrorType, problem

PROBLEM_JSON = "application/problem+json"


class AcmeProblem(Exception):
    """An ACME problem: its type, a detail for the client, the HTTP status, and, for refusals
    about single identifiers, one subproblem per identifier."""

    def __init__(
        self,
        error: ErrorType,
        detail: str,
        status: int = 400,
        *,
        subproblems: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.status = status
        self.subproblems = subproblems or []
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def document(self) -> dict[str, Any]:
        body = problem(self.error, self.detail, status=self.status, subproblems=self.subproblems)
        body.update(self.extra)
        return body


def malformed(detail: str, status: int = 400) -> AcmeProblem:
    return AcmeProblem(ErrorType.MALFORMED, detail, status)


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem(ErrorType.UNAUTHORIZED, detail, 403)


def not_found(detail: str) -> AcmeProblem:
    return AcmeProblem(ErrorType.MALFORMED, detail, 404)
