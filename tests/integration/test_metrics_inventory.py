"""The inventory gauges, measured by the renewer's aggregate on the session's PostgreSQL.

Two applications share one profile; certificates are issued through the real api and issuer,
then moved through states with column writes. The gauges must count per application, profile
and status, give the earliest expiry of active certificates (and of those with no renewal in
flight), each CA's expiry, and drop a series when its group empties. The session's database is
shared with other tests, so only this test's applications and CAs are judged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from certforge.common.metrics import (
    CA_EXPIRY,
    CERTIFICATES,
    EARLIEST_EXPIRY,
    INVENTORY_MEASURED,
    UNATTENDED_EARLIEST_EXPIRY,
    InventoryCollector,
    exposition,
)
from certforge.renewer.inventory import InventoryGauges
from issuance_kit import Enrollment, enroll, enroll_new_application, issue
from lifecycle_kit import set_certificate

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def certificate(admin: httpx.AsyncClient, e: Enrollment) -> dict[str, Any]:
    name = f"m{uuid4().hex[:8]}.example.com"
    issued: dict[str, Any] = (await issue(admin, e, common_name=name))["certificate"]
    return issued


def series(app: str, profile: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"application": app, "profile": profile, **more}.items()))


async def test_inventory_gauges_count_and_date_each_group(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    e = await enroll(admin)
    other = await enroll_new_application(
        admin, e.root, e.issuing, e.policy, {"slug": e.profile, "id": e.profile_id}
    )
    a = [await certificate(admin, e) for _ in range(3)]
    b = await certificate(admin, other)
    soon = datetime(2030, 1, 1, tzinfo=UTC)
    await set_certificate(api_app, a[0]["id"], not_after=soon, renewing_request_id=uuid4())
    await set_certificate(api_app, a[1]["id"], not_after=soon + timedelta(days=3))
    await set_certificate(api_app, a[2]["id"], status="revoked")

    registry = CollectorRegistry()
    collector = InventoryCollector()
    registry.register(collector)
    gauges = InventoryGauges(
        api_app.state.certforge.sessions, timedelta(minutes=1), publish=collector.update
    )
    inventory = await gauges.refresh()
    got = samples(generate_latest(registry).decode())

    assert got[(CERTIFICATES, series(e.app, e.profile, status="active"))] == 2
    assert got[(CERTIFICATES, series(e.app, e.profile, status="revoked"))] == 1
    assert got[(CERTIFICATES, series(other.app, e.profile, status="active"))] == 1
    assert (CERTIFICATES, series(other.app, e.profile, status="revoked")) not in got
    # The earliest active expiry is a[0]'s; it has a renewal in flight, so the earliest one
    # nobody is renewing is a[1]'s.
    assert got[(EARLIEST_EXPIRY, series(e.app, e.profile))] == soon.timestamp()
    assert (
        got[(UNATTENDED_EARLIEST_EXPIRY, series(e.app, e.profile))]
        == (soon + timedelta(days=3)).timestamp()
    )
    issuing_not_after = datetime.fromisoformat(e.issuing["not_after"])
    ca_series = tuple(sorted({"ca": e.issuing["name"], "status": "active"}.items()))
    assert got[(CA_EXPIRY, ca_series)] == issuing_not_after.timestamp()
    assert got[(INVENTORY_MEASURED, ())] == inventory.measured_at.timestamp()  # type: ignore[union-attr]

    # The other application's only certificate is revoked: its `active` series and its
    # expiry series disappear instead of keeping their last value.
    await set_certificate(api_app, b["id"], status="revoked")
    await gauges.refresh()
    got = samples(generate_latest(registry).decode())
    assert (CERTIFICATES, series(other.app, e.profile, status="active")) not in got
    assert (EARLIEST_EXPIRY, series(other.app, e.profile)) not in got
    assert got[(CERTIFICATES, series(other.app, e.profile, status="revoked"))] == 1


async def test_the_renewer_publishes_the_inventory_on_metrics(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    """By default the gauges go to the process registry, which `/metrics` of every worker
    serves (`runtime.health_app` answers with `exposition()`)."""
    e = await enroll(admin)
    await certificate(admin, e)
    await InventoryGauges(api_app.state.certforge.sessions, timedelta(minutes=1)).refresh()
    body, _ = exposition()
    got = samples(body.decode())
    assert got[(CERTIFICATES, series(e.app, e.profile, status="active"))] == 1
