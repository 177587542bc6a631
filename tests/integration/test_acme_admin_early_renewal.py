"""Early renewal (ARI) as an admin asks for it: of one certificate (application admin or
operator) or of everything a CA issued (product admin); both audited, both shown in the
read models, and auto-renewed certificates become due for the renewer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from admin_kit import API, ClientFor, create_application, ok, problem
from issuance_kit import Enrollment, enroll, issue, member
from lifecycle_kit import certificate_row, set_certificate

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enrollment(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin)


async def test_certificate_early_renewal(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any, enrollment: Enrollment
) -> None:
    operator = await member(admin, client_for, enrollment.app, "operator")
    auditor = await member(admin, client_for, enrollment.app, "auditor")
    certificate = (await issue(operator, enrollment, common_name="early.example.com"))[
        "certificate"
    ]
    url = f"{enrollment.certificates}/{certificate['id']}"
    assert ok(await operator.get(url))["early_renewal_requested_at"] is None

    problem(await auditor.post(f"{url}/early-renewal"), 403)
    before = datetime.now(UTC)
    asked = ok(await operator.post(f"{url}/early-renewal"))
    when = datetime.fromisoformat(asked["early_renewal_requested_at"])
    assert before <= when <= datetime.now(UTC)
    assert datetime.fromisoformat(asked["renew_at"]) == when, "auto-renewed: due now"
    assert asked["status"] == "active"
    assert (
        ok(await auditor.get(url))["early_renewal_requested_at"]
        == asked["early_renewal_requested_at"]
    )
    entries = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"resource_id": certificate["id"], "action": "certificate.early_renewal"},
        )
    )["items"]
    assert [e["outcome"] for e in entries] == ["success"]
    assert entries[0]["details"]["serial_number"] == certificate["serial_number"]

    # Only active certificates: an expired one is 422, a renewed or revoked one 409.
    await set_certificate(api_app, certificate["id"], not_after=before - timedelta(seconds=1))
    problem(await operator.post(f"{url}/early-renewal"), 422, "certificate_id")
    await set_certificate(api_app, certificate["id"], not_after=before + timedelta(days=30))
    await set_certificate(api_app, certificate["id"], status="renewed")
    problem(await operator.post(f"{url}/early-renewal"), 409, "certificate_id")
    await set_certificate(api_app, certificate["id"], status="active")
    revoked = await operator.post(f"{url}/revoke", json={"reason": "superseded"})
    assert revoked.status_code == 200, revoked.text
    problem(await operator.post(f"{url}/early-renewal"), 409, "certificate_id")

    other = await create_application(admin)
    outsider = await member(admin, client_for, other["slug"], "application-admin")
    problem(await outsider.post(f"{url}/early-renewal"), 404, "app")
    elsewhere = f"{API}/applications/{other['slug']}/certificates/{certificate['id']}"
    problem(await admin.post(f"{elsewhere}/early-renewal"), 404, "certificate_id")
    problem(await admin.post(f"{enrollment.certificates}/{uuid4()}/early-renewal"), 404)


async def test_ca_early_renewal(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any
) -> None:
    enrollment = await enroll(admin)
    operator = await member(admin, client_for, enrollment.app, "operator")
    app_admin = await member(admin, client_for, enrollment.app, "application-admin")
    first = (await issue(operator, enrollment, common_name="a.example.com"))["certificate"]
    manual = (await issue(operator, enrollment, common_name="b.example.com"))["certificate"]
    ok(
        await operator.patch(
            f"{enrollment.certificates}/{manual['id']}", json={"auto_renew": False}
        )
    )
    ca = f"{API}/cas/{enrollment.issuing['id']}"
    assert ok(await admin.get(ca))["early_renewal_requested_at"] is None
    problem(await app_admin.post(f"{ca}/early-renewal"), 403)

    asked = ok(await admin.post(f"{ca}/early-renewal"))
    when = datetime.fromisoformat(asked["early_renewal_requested_at"])
    assert (
        ok(await admin.get(ca))["early_renewal_requested_at"] == asked["early_renewal_requested_at"]
    )
    # The auto-renewed certificate is due at once; the other is left to its owner (and ARI).
    assert (await certificate_row(api_app, first["id"])).renew_at == when
    assert (await certificate_row(api_app, manual["id"])).renew_at > when
    entries = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"resource_id": enrollment.issuing["id"], "action": "ca.early_renewal"},
        )
    )["items"]
    assert [e["details"]["rescheduled"] for e in entries] == [1]
    # Asking again moves the moment forward (covering what was issued since).
    later = ok(await admin.post(f"{ca}/early-renewal"))
    assert datetime.fromisoformat(later["early_renewal_requested_at"]) > when

    problem(await admin.post(f"{API}/cas/{uuid4()}/early-renewal"), 404, "ca_id")
    problem(await admin.post(f"{API}/cas/not-a-uuid/early-renewal"), 422, "ca_id")
