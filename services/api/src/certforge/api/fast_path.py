"""The relying parties' hot path, in front of the FastAPI app: OCSP answers and CRLs this replica
remembers, served from memory without routing, dependencies or the other middleware.

Profiles of `GET /ocsp/…` through FastAPI showed routing, dependency injection, the request
context and observability middleware costing several times what finding the answer costs; a
relying party's check needs none of them (public, no body to limit but the POST's, no audit).
Anything this path cannot answer from memory (a first request, a nonce, another CertID hash, an
error to report as a problem document) goes on to the app unchanged, whose routes load, sign and
remember (`routes/ocsp.py`, `routes/crls.py`); the answer logic is theirs, not a copy.

What it answers still counts in `certforge_http_requests_total` and the duration histogram,
under the route templates the app's routes have, so a dashboard sees one OCSP rate whichever
path answered (no trace span and no request id: a relying party's check is not a request
anyone will quote).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from certforge.api.context import ApiContext
from certforge.api.domain import crls
from certforge.api.domain.ocsp import from_memory
from certforge.api.ocsp import decode_get
from certforge.api.revocation_http import Conditions, Reply, crl_reply, ocsp_reply
from certforge.common.contracts.routes import API_PREFIX, CA_CRL, OCSP, OCSP_PREFIX
from certforge.common.metrics import HTTP_DURATION, HTTP_REQUESTS

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_OCSP = OCSP_PREFIX + "/"
_CAS = API_PREFIX + "/cas/"

OCSP_GET_ROUTE = OCSP_PREFIX + OCSP + "/{encoded:path}"
OCSP_POST_ROUTE = OCSP_PREFIX + OCSP
CRL_ROUTE = API_PREFIX + CA_CRL
CRL_PEM_ROUTE = API_PREFIX + CA_CRL + ".pem"
"""The templates of the app's routes for the same requests (`routes/ocsp.py`, `routes/crls.py`)."""


def _count(route: str, method: str, status: int, started: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)


class RevocationFastPath:
    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            started = time.perf_counter()
            path: str = scope["path"]
            if path.startswith(_OCSP):
                if scope["method"] == "GET" and await self._ocsp_get(scope, path, send, started):
                    return
                if scope["method"] == "POST":
                    receive = await self._ocsp_post(scope, path, receive, send, started)
                    if receive is _ANSWERED:
                        return
            elif path.startswith(_CAS) and await self._crl(scope, path, send, started):
                return
        await self.app(scope, receive, send)

    async def _ocsp_get(self, scope: Scope, path: str, send: Send, started: float) -> bool:
        ca_ref, slash, encoded = path[len(_OCSP) :].partition("/")
        context = _context(scope)
        der = decode_get(encoded) if slash and context is not None else None
        if der is None or context is None:
            return False
        reply = self._ocsp(context, ca_ref, der, _conditions(scope))
        if reply is None:
            return False
        await _send(send, reply)
        _count(OCSP_GET_ROUTE, "GET", reply.status, started)
        return True

    async def _ocsp_post(
        self, scope: Scope, path: str, receive: Receive, send: Send, started: float
    ) -> Receive:
        """Answer from memory if possible; else a `receive` that replays the body read."""
        ca_ref = path[len(_OCSP) :]
        context = _context(scope)
        declared = _header(scope, b"content-length")
        if "/" in ca_ref or context is None or declared is None or not declared.isdigit():
            return receive
        if int(declared) > self.max_body_bytes:
            return receive  # the app's middleware answers 413
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replaying(body, message, receive)
            body += message.get("body", b"")
            more = message.get("more_body", False)
        reply = self._ocsp(context, ca_ref, body, None)
        if reply is None:
            return _replaying(body, None, receive)
        await _send(send, reply)
        _count(OCSP_POST_ROUTE, "POST", reply.status, started)
        return _ANSWERED

    def _ocsp(
        self, context: ApiContext, ca_ref: str, der: bytes, conditions: Conditions | None
    ) -> Reply | None:
        now = datetime.now(UTC)
        answer = from_memory(context.ocsp, ca_ref, der, now)
        if answer is None:
            return None
        limit = context.settings.ocsp_response_validity_seconds
        return ocsp_reply(answer.der, answer.prepared, now, limit, conditions)

    async def _crl(self, scope: Scope, path: str, send: Send, started: float) -> bool:
        ca_ref, slash, name = path[len(_CAS) :].partition("/")
        context = _context(scope)
        wanted = scope["method"] == "GET" and slash and name in ("crl", "crl.pem")
        if not wanted or context is None:
            return False
        try:
            ca_id = UUID(ca_ref)
        except ValueError:
            return False
        recheck = context.settings.crl_recheck_seconds
        served = crls.remembered(context.crls, ca_id, time.monotonic(), recheck)
        if served is None:
            return False
        now = datetime.now(UTC)
        reply = crl_reply(served, name == "crl.pem", now, _conditions(scope))
        await _send(send, reply)
        _count(CRL_PEM_ROUTE if name == "crl.pem" else CRL_ROUTE, "GET", reply.status, started)
        return True


async def _answered() -> dict[str, Any]:  # pragma: no cover - a marker, never called
    raise AssertionError


_ANSWERED: Receive = _answered


def _replaying(body: bytes, pending: dict[str, Any] | None, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then what `receive` gives."""
    queue = [{"type": "http.request", "body": body, "more_body": False}]
    if pending is not None:
        queue = [pending] if not body else [*queue, pending]

    async def replay() -> dict[str, Any]:
        return queue.pop(0) if queue else await receive()

    return replay


def _context(scope: Scope) -> ApiContext | None:
    """The app's context once its lifespan has run (None before: let the app answer)."""
    state = getattr(scope.get("app"), "state", None)
    return getattr(state, "certforge", None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _conditions(scope: Scope) -> Conditions:
    return Conditions(_header(scope, b"if-none-match"), _header(scope, b"if-modified-since"))


async def _send(send: Send, reply: Reply) -> None:
    headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
