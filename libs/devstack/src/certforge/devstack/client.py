"""The dev stack's REST client: the few calls `make run` and `make demo` make, as the bootstrap
admin, through the public API like any other client (never the database or NATS).

The standard library's urllib, on purpose: `make run` needs only the runtime dependencies, and a
handful of JSON calls on loopback need nothing more.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certforge.devstack.errors import DevStackError

__all__ = ["Api", "Pause", "find"]

Pause = Callable[[float], None]
"""Waits about that many seconds between two attempts. `make run` passes one that gives up when
Ctrl-C arrives or a service dies (raising), `make demo` plain `time.sleep`."""


@dataclass
class Api:
    """JSON calls to `base` with the bootstrap admin's bearer token."""

    base: str
    token: str
    context: ssl.SSLContext | None = None
    """For an https `base`: the context that trusts its CA."""

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, Any]:
        """(status, decoded JSON body); an unreachable API is a DevStackError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the developer's own API URL
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=timeout, context=self.context
            ) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise DevStackError(
                f"cannot reach the API at {self.base} ({exc}); is `make run` running?"
            ) from exc

    def expect(
        self, status: int | tuple[int, ...], method: str, path: str, body: Any = None
    ) -> Any:
        """The answer's body when its status is one of `status`, else a DevStackError that
        quotes the API's problem detail."""
        wanted = (status,) if isinstance(status, int) else status
        got, answer = self.call(method, path, body)
        if got not in wanted:
            raise DevStackError(f"{method} {path} answered {got}: {detail(answer)}")
        return answer

    def every(self, path: str) -> list[Any]:
        """Every item of a paged list (`{"items", "next_cursor"}`), following the cursors."""
        items: list[Any] = []
        cursor = ""
        while True:
            query = f"?limit=500&cursor={cursor}" if cursor else "?limit=500"
            page = self.expect(200, "GET", path + query)
            items += page["items"]
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return items

    def expect_when_ready(
        self,
        status: int,
        method: str,
        path: str,
        body: Any,
        pause: Pause,
        timeout: float = 90.0,
    ) -> Any:
        """`expect`, but a 503 is retried until `timeout`: right after start-up the api answers
        before the issuer has joined its request/reply queue (CA creation is a call to it)."""
        deadline = time.monotonic() + timeout
        while True:
            got, answer = self.call(method, path, body)
            if got == status:
                return answer
            if got != 503 or time.monotonic() > deadline:
                raise DevStackError(f"{method} {path} answered {got}: {detail(answer)}")
            pause(0.5)


def find(items: Any, key: str, value: str) -> dict[str, Any] | None:
    """The first item of a list answer (or of a page's `items`) whose `key` is `value`."""
    rows = items["items"] if isinstance(items, dict) and "items" in items else items
    return next((item for item in rows if item.get(key) == value), None)


def detail(answer: Any) -> Any:
    """The problem document's detail, or the whole answer when it is not one."""
    return answer.get("detail") if isinstance(answer, dict) and "detail" in answer else answer


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")
