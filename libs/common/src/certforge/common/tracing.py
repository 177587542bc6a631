"""OpenTelemetry tracing: one trace follows a request from the api through NATS to the issuer
and on to whoever consumes its events.

The W3C `traceparent` rides in every outbox row's headers (and in the CloudEvents
`traceparent` extension), so the relay publishes it as a NATS header and the consumer continues
the trace. Spans are always recorded (log lines carry `trace_id`); they are exported over OTLP
only when an endpoint is configured (`CERTFORGE_OTLP_ENDPOINT` or the standard
`OTEL_EXPORTER_OTLP_ENDPOINT`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Mapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def setup_tracing(service: str, otlp_endpoint: str | None) -> None:
    """Install the tracer provider once per process; export only with an endpoint."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"certforge-{service}"}))
    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    _configured = True


@functools.cache
def tracer() -> trace.Tracer:
    """One tracer per process: `get_tracer` builds a new one on every call (it showed in the
    issuer's profile). Safe before `setup_tracing`: the API hands out a proxy until then."""
    return trace.get_tracer("certforge")


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def continued(name: str, headers: Mapping[str, str] | None, **attributes: str) -> Iterator[None]:
    """A span continuing the trace whose `traceparent` is in `headers` (a new trace if none)."""
    parent = propagate.extract(dict(headers or {}))
    token = context.attach(parent)
    try:
        with tracer().start_as_current_span(name, attributes=attributes):
            yield
    finally:
        context.detach(token)


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span, for log lines; None outside a span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
