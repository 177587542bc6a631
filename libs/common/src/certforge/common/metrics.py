"""Prometheus metrics of every service, declared once (names are the dashboards' contract).

Metric objects are declarations, like the table definitions: they hold no connection and cost
nothing until observed. Each service exposes them at `/metrics` (the api on its port, workers
on `CERTFORGE_HEALTH_PORT`).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "certforge_http_requests_total", "HTTP requests served", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "certforge_http_request_duration_seconds",
    "HTTP request handling time",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ISSUANCE_LATENCY = Histogram(
    "certforge_issuance_latency_seconds",
    "From request accepted (stored) to certificate stored",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CERTIFICATES_ISSUED = Counter(
    "certforge_certificates_issued_total",
    "Certificates signed",
    ["key_algorithm", "method", "kind"],
)
REQUESTS_FAILED = Counter(
    "certforge_requests_failed_total", "Certificate requests the issuer refused", ["kind"]
)
RENEWALS_DUE = Counter(
    "certforge_renewals_due_total", "Certificates claimed for renewal by the renewer"
)
RENEWALS = Counter("certforge_renewals_total", "Renewals completed by the issuer", ["outcome"])
CERTIFICATES_EXPIRED = Counter(
    "certforge_certificates_expired_total", "Certificates marked expired"
)
OUTBOX_BACKLOG = Gauge("certforge_outbox_backlog", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge(
    "certforge_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row"
)
OUTBOX_PUBLISHED = Counter("certforge_outbox_published_total", "Outbox rows published")
CONSUMER_PENDING = Gauge(
    "certforge_consumer_pending_messages",
    "Messages in the stream not yet delivered to the durable consumer (lag)",
    ["durable"],
)
CONSUMER_ACK_PENDING = Gauge(
    "certforge_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not yet acknowledged",
    ["durable"],
)
SYNC_RESULTS = Counter(
    "certforge_sync_results_total", "Pushes to sync destinations", ["kind", "outcome"]
)
CRL_AGE = Gauge("certforge_crl_age_seconds", "Age of the newest CRL of each CA", ["ca"])
CRL_BUILDS = Counter("certforge_crl_builds_total", "CRLs signed")


def exposition() -> tuple[bytes, str]:
    """The body and content type of a `/metrics` response."""
    return generate_latest(), CONTENT_TYPE_LATEST
