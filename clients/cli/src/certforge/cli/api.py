"""The one HTTP client of Certforge's public REST API, shared by the CLI and the agent.

Clients speak only the public API (no `certforge.common`, no service package): what they know of
the server is the OpenAPI document, so they install alone on a laptop or a server.

Use::

    from certforge.cli.api import ApiClient, ApiError

    with ApiClient("https://certforge.example.com", token) as api:
        me = api.get("/api/v1/me")                          # the decoded JSON body
        req = api.post("/api/v1/applications/shop/certificate-requests",
                       {"profile": "web-server", "common_name": "a.example.com"},
                       wait=30)                             # sends `Prefer: wait=30`
        pem = api.get_bytes(f"/api/v1/applications/shop/certificates/{cid}/pem")

Where the URL, token and CA file come from (options, `CERTFORGE_URL`/`CERTFORGE_TOKEN`/
`CERTFORGE_CA_FILE`, then what `certforge login` saved) is `certforge.cli.config.resolve`;
`certforge.cli.core.State.client_for(credentials)` builds the client with the TLS context.

`AsyncApiClient` has the same methods as coroutines (for the agent's event loop). Both take an
`httpx` transport (`transport=httpx.ASGITransport(app)` or `httpx.MockTransport` in tests) so a
test swaps the wire, never the client's internals.

Every failure is one `ApiError` subclass whose `exit_code` is the CLI's documented exit code and
whose `str()` is one line a person can act on (the agent logs the same line)::

    ApiError (exit_code 1)
    ├── Refused           3  the server understood and refused: 400, 409, 413, 415, 422
    │                        (policy violations, validation, conflicts); `.problem` has the
    │                        field errors
    ├── NotFoundOrDenied  4  401 (unknown or expired token), 403, 404
    └── Unreachable       5  5xx, 429, connection refused, DNS failure, timeout, TLS failure,
                             or an answer that is not the API's

(2, usage, is the CLI's own: bad arguments never reach this module.) A `Problem` is the RFC 9457
document the API answered, kept whole so `--json` can print it and a caller can branch on
`problem.code` (e.g. `conflict`) or `problem.errors` (`[{"field", "message"}]`).

TLS: `verify` is True (the system's trust store via certifi), or an `ssl.SSLContext` for an API
whose certificate comes from a private CA (`ssl.create_default_context(cafile=...)`).

Timeouts: `timeout` (default 30 s) bounds connect, read and write; a call that sends `wait=N`
extends the read timeout to N + 10 s so the server's own wait ends first. The token is sent only
in the `Authorization` header and never appears in an error message.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiClient",
    "ApiError",
    "AsyncApiClient",
    "NotFoundOrDenied",
    "Problem",
    "Refused",
    "Unreachable",
    "error_for_response",
    "normalize_base_url",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds for connect, read and write; enough for a loaded API, short enough for a terminal."""

USER_AGENT = "certforge-cli/0.1"


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem document as the API sends it (`application/problem+json`)."""

    status: int
    title: str
    detail: str
    type: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """The last part of `type` (`urn:certforge:problem:conflict` → `conflict`)."""
        return self.type.rsplit(":", 1)[-1] if self.type else ""

    @classmethod
    def from_response(cls, response: httpx.Response) -> Problem:
        """The problem in `response`, or one built from its status when the body is not one."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            reason = response.reason_phrase or "Error"
            return cls(response.status_code, reason, f"HTTP {response.status_code} {reason}")
        errors = body.get("errors")
        return cls(
            status=int(body.get("status") or response.status_code),
            title=str(body.get("title") or response.reason_phrase or "Error"),
            detail=str(body.get("detail") or ""),
            type=str(body.get("type") or ""),
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            request_id=body.get("request_id"),
            raw=body,
        )


class ApiError(Exception):
    """Any failure of a call to the API; `exit_code` is the CLI's, `problem` the API's answer."""

    exit_code = 1

    def __init__(self, message: str, problem: Problem | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem


class Refused(ApiError):
    """The server understood the request and refused it (validation, policy, conflict)."""

    exit_code = 3


class NotFoundOrDenied(ApiError):
    """Unknown resource, or a token that is unknown, expired or lacks the role."""

    exit_code = 4


class Unreachable(ApiError):
    """The server could not be reached or failed (network, timeout, 5xx): worth a retry."""

    exit_code = 5


def _kind_for(status: int) -> type[ApiError]:
    if status in (401, 403, 404):
        return NotFoundOrDenied
    if status >= 500 or status == 429:
        return Unreachable
    return Refused


def error_for_response(response: httpx.Response) -> ApiError:
    """The typed error for a non-2xx `response`, its message one line: `title: detail`."""
    problem = Problem.from_response(response)
    message = f"{problem.title}: {problem.detail}" if problem.detail else problem.title
    if response.status_code == 401:
        message += " (check the token: `certforge login`)"
    return _kind_for(response.status_code)(message, problem)


def normalize_base_url(url: str) -> str:
    """`url` without a trailing slash; refuses anything but an absolute http(s) URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r} (e.g. https://certforge.example.com)")
    return url.strip().rstrip("/")


def _transport_error(exc: httpx.TransportError, base_url: str) -> Unreachable:
    """One line for a network failure; the exception class names what failed."""
    if isinstance(exc, httpx.TimeoutException):
        return Unreachable(f"no answer from {base_url} in time ({type(exc).__name__})")
    reason = str(exc) or type(exc).__name__
    return Unreachable(f"cannot reach {base_url}: {reason}")


def _decode(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Unreachable(
            f"the answer from {response.request.url} is not JSON: is this a Certforge API URL?"
        ) from exc


class _Base:
    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _options(
        self, wait: int | None, headers: Mapping[str, str] | None
    ) -> tuple[dict[str, str], httpx.Timeout]:
        merged = dict(headers or {})
        read = self.timeout
        if wait is not None:
            merged["Prefer"] = f"wait={wait}"
            read = max(read, wait + 10.0)
        return merged, httpx.Timeout(self.timeout, read=read)

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        raise error_for_response(response)


class ApiClient(_Base):
    """A synchronous client: one connection pool, closed by `close()` or `with`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, transport=transport, verify=verify
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        wait: int | None = None,
    ) -> httpx.Response:
        """The 2xx response to `method path`; raises an `ApiError` for anything else."""
        merged, timeout = self._options(wait, headers)
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=_params(params),
                headers=merged,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.base_url) from exc
        return self._check(response)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return _decode(self.request("GET", path, params=params))

    def get_bytes(self, path: str) -> bytes:
        return self.request("GET", path, headers={"Accept": "*/*"}).content

    def post(self, path: str, body: Any = None, *, wait: int | None = None) -> Any:
        return _decode(self.request("POST", path, json=body, wait=wait))

    def post_bytes(self, path: str, body: Any = None) -> bytes:
        return self.request("POST", path, json=body, headers={"Accept": "*/*"}).content

    def put(self, path: str, body: Any = None) -> Any:
        return _decode(self.request("PUT", path, json=body))

    def patch(self, path: str, body: Any) -> Any:
        return _decode(self.request("PATCH", path, json=body))

    def delete(self, path: str) -> Any:
        return _decode(self.request("DELETE", path))


class AsyncApiClient(_Base):
    """The same client for asyncio code (the agent); the same errors."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, transport=transport, verify=verify
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        wait: int | None = None,
    ) -> httpx.Response:
        """The 2xx response to `method path`; raises an `ApiError` for anything else."""
        merged, timeout = self._options(wait, headers)
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=_params(params),
                headers=merged,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.base_url) from exc
        return self._check(response)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return _decode(await self.request("GET", path, params=params))

    async def get_bytes(self, path: str) -> bytes:
        return (await self.request("GET", path, headers={"Accept": "*/*"})).content

    async def post(self, path: str, body: Any = None, *, wait: int | None = None) -> Any:
        return _decode(await self.request("POST", path, json=body, wait=wait))

    async def post_bytes(self, path: str, body: Any = None) -> bytes:
        return (await self.request("POST", path, json=body, headers={"Accept": "*/*"})).content

    async def put(self, path: str, body: Any = None) -> Any:
        return _decode(await self.request("PUT", path, json=body))

    async def patch(self, path: str, body: Any) -> Any:
        return _decode(await self.request("PATCH", path, json=body))

    async def delete(self, path: str) -> Any:
        return _decode(await self.request("DELETE", path))


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones (`None`, empty lists), so filters stay optional."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None and v != []}
