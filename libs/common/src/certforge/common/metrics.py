"""Prometheus metrics of every service, declared once (names are the dashboards' contract).

Metric objects are declarations, like the table definitions: they hold no connection and cost
nothing until observed. Each service exposes them at `/metrics` (the api on its port, workers
on `CERTFORGE_HEALTH_PORT`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


# --- inventory: what is stored, measured by the renewer's periodic aggregate ----------------

CERTIFICATES = "certforge_certificates"
EARLIEST_EXPIRY = "certforge_certificates_earliest_expiry_timestamp_seconds"
UNATTENDED_EARLIEST_EXPIRY = "certforge_certificates_unattended_earliest_expiry_timestamp_seconds"
CA_EXPIRY = "certforge_ca_expiry_timestamp_seconds"
INVENTORY_MEASURED = "certforge_inventory_measured_timestamp_seconds"
INVENTORY_DURATION = "certforge_inventory_duration_seconds"


@dataclass(frozen=True)
class InventoryGroup:
    """Certificates of one application, profile and status."""

    application: str
    profile: str
    status: str
    count: int
    earliest_not_after: datetime | None = None
    """Earliest `not_after` of the group (reported for `active` groups only)."""
    unattended_not_after: datetime | None = None
    """Earliest `not_after` among those with no renewal in flight (`active` groups only)."""


@dataclass(frozen=True)
class CaExpiry:
    ca: str
    status: str
    not_after: datetime


@dataclass(frozen=True)
class Inventory:
    groups: tuple[InventoryGroup, ...] = ()
    cas: tuple[CaExpiry, ...] = ()
    measured_at: datetime | None = None
    duration_seconds: float = 0.0


class InventoryCollector(Collector):
    """Serves the last measured `Inventory` as gauges, one snapshot at a time.

    Why a collector and not `Gauge`s set label by label: an application, profile or CA that
    disappears (or a status a group no longer has) must vanish from `/metrics`, and clearing
    then refilling labelled gauges would let a scrape in between see a half-empty inventory.
    Swapping one immutable snapshot is atomic. The series count is bounded by applications x
    profiles x statuses, never by certificates (cert-manager exports one series per
    certificate; an inventory of a million certificates must not)."""

    def __init__(self) -> None:
        self._inventory = Inventory()

    def update(self, inventory: Inventory) -> None:
        self._inventory = inventory

    def describe(self) -> list[GaugeMetricFamily]:
        """Names only, so registering does not run `collect` (which has nothing yet)."""
        return list(self._families(Inventory()))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(self._inventory)

    @staticmethod
    def _families(inventory: Inventory) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily(
            CERTIFICATES,
            "Stored certificates by application, profile and status",
            labels=["application", "profile", "status"],
        )
        earliest = GaugeMetricFamily(
            EARLIEST_EXPIRY,
            "Earliest not_after (unix seconds) of the active certificates of an application "
            "and profile",
            labels=["application", "profile"],
        )
        unattended = GaugeMetricFamily(
            UNATTENDED_EARLIEST_EXPIRY,
            "Earliest not_after (unix seconds) of the active certificates of an application "
            "and profile that have no renewal in flight",
            labels=["application", "profile"],
        )
        cas = GaugeMetricFamily(
            CA_EXPIRY, "not_after (unix seconds) of each CA", labels=["ca", "status"]
        )
        measured = GaugeMetricFamily(
            INVENTORY_MEASURED, "When the inventory gauges were last measured (unix seconds)"
        )
        duration = GaugeMetricFamily(
            INVENTORY_DURATION, "How long the last inventory measurement took"
        )
        for group in inventory.groups:
            count.add_metric([group.application, group.profile, group.status], group.count)
            if group.earliest_not_after is not None:
                earliest.add_metric(
                    [group.application, group.profile], group.earliest_not_after.timestamp()
                )
            if group.unattended_not_after is not None:
                unattended.add_metric(
                    [group.application, group.profile], group.unattended_not_after.timestamp()
                )
        for ca in inventory.cas:
            cas.add_metric([ca.ca, ca.status], ca.not_after.timestamp())
        if inventory.measured_at is not None:
            measured.add_metric([], inventory.measured_at.timestamp())
            duration.add_metric([], inventory.duration_seconds)
        yield from (count, earliest, unattended, cas, measured, duration)


INVENTORY = InventoryCollector()
REGISTRY.register(INVENTORY)


def exposition() -> tuple[bytes, str]:
    """The body and content type of a `/metrics` response."""
    return generate_latest(), CONTENT_TYPE_LATEST
