"""The console speaks the REST API, in process, as the signed-in person.

Each page calls the same FastAPI app through `httpx.ASGITransport`, with the session token as
the bearer: authentication, authorisation, validation, policy and audit happen in the routes
and domain functions every other client uses, and a refusal comes back as the same problem
document, whose `errors` the forms show beside their fields. No rule is copied into the console.
The cost is a second pass through the middleware per call (microseconds, no network).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from certforge.api.routes import API_PREFIX


class SessionExpired(Exception):
    """The API answered 401: the session is gone (expired, signed out, identity disabled)."""


@dataclass(frozen=True)
class Problem:
    """An API refusal as a form shows it: the detail, and messages by field name."""

    status: int
    detail: str
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, response: httpx.Response) -> Problem:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        errors: dict[str, str] = {}
        for error in body.get("errors") or []:
            name, message = str(error.get("field", "")), str(error.get("message", ""))
            errors[name] = f"{errors[name]}; {message}" if name in errors else message
        return cls(response.status_code, str(body.get("detail") or response.reason_phrase), errors)

    def on(self, *names: str) -> str | None:
        """The message for a form field: its own, or one naming a part of it (`sans.0.value`)."""
        found = [
            message
            for key, message in self.errors.items()
            for name in names
            if key == name or key.startswith(f"{name}.")
        ]
        return "; ".join(found) or None

    def unplaced(self, *shown: str) -> list[str]:
        """Messages no field of the form shows, so the form can list them at its top."""
        return [
            f"{key}: {message}"
            for key, message in self.errors.items()
            if not any(key == name or key.startswith(f"{name}.") for name in shown)
        ]


class ConsoleApi:
    """One page's calls to the API, authenticated with the page's session token."""

    def __init__(self, request: Request, session_token: str) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=request.app),
            base_url=str(request.base_url).rstrip("/") + API_PREFIX,
            headers={
                "Authorization": f"Bearer {session_token}",
                "X-Request-Id": getattr(request.state, "request_id", "") or "",
            },
            timeout=90,
        )

    async def __aenter__(self) -> ConsoleApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw response; 401 raises `SessionExpired`."""
        response = await self._client.request(method, path, **kwargs)
        if response.status_code == 401:
            raise SessionExpired
        return response

    async def get(self, path: str, **params: Any) -> Any:
        """The JSON of a read that must succeed (a refusal raises `ApiRefused`)."""
        clean = {k: v for k, v in params.items() if v not in (None, "", [])}
        response = await self.call("GET", path, params=clean)
        if response.is_error:
            raise ApiRefused(Problem.of(response))
        return response.json()

    async def every(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paged list (`{"items", "next_cursor"}`), following the cursors."""
        items: list[Any] = []
        cursor = None
        while True:
            page = await self.get(path, **params, limit=500, cursor=cursor)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def send(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[Any, Problem | None]:
        """A change: its JSON answer, or the problem that refused it."""
        response = await self.call(method, path, json=body, headers=headers)
        if response.is_error:
            return None, Problem.of(response)
        return (response.json() if response.content else None), None


class ApiRefused(Exception):
    """A read the page needs was refused (403, 404...): the page shows the problem instead."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem
