"""Per-request trace span and metrics, as pure ASGI middleware (no body buffering).

The span continues a caller's W3C `traceparent` when one is sent; everything the request
enqueues carries the trace on to NATS. Metrics are labelled by the route template
(`/api/v1/applications/{app}/certificate-requests`), never by the raw path, so their
cardinality stays bounded.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace

from certforge.common.metrics import HTTP_DURATION, HTTP_REQUESTS
from certforge.common.tracing import continued


class ObservabilityMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status = 500
        started = time.perf_counter()

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        with continued(f"{method} {scope['path']}", headers, **{"http.method": method}):
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                span = trace.get_current_span()
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.status_code", status)
                HTTP_REQUESTS.labels(route, method, str(status)).inc()
                HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
