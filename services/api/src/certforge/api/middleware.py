"""Pure ASGI middleware: request ids and the body-size limit (checked before any parsing)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException

Scope = dict[str, Any]


class RequestContextMiddleware:
    """Give every request an id (`X-Request-Id`, echoed) and refuse bodies over the limit."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = incoming if incoming.isprintable() and incoming else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, send, request_id)
            return

        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await self._too_large(scope, send, request_id)

    async def _too_large(self, scope: Scope, send: Any, request_id: str) -> None:
        body = orjson.dumps(
            {
                "type": "urn:certforge:problem:payload-too-large",
                "title": "Payload too large",
                "status": 413,
                "detail": f"request body is larger than {self.max_body_bytes} bytes",
                "instance": scope.get("path", ""),
                "request_id": request_id,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(HTTPException):
    """Raised while the body streams in. An `HTTPException`, because FastAPI passes those on
    to the exception handlers (a 413 problem) but turns anything else raised while it reads a
    body into a generic 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")
