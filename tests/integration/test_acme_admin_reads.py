"""ACME accounts and orders as admins and auditors read them (rows written here as the ACME
endpoints and the validator would), and deactivating an account."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio

from admin_kit import API, ClientFor, create_application, ok, problem
from certforge.common.acme import ErrorType
from certforge.common.acme import problem as acme_problem
from certforge.common.db.tables import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeOrder,
    CertificateRequest,
)
from issuance_kit import Enrollment, enroll, enroll_new_application, member

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass
class Acme:
    """One application with two attached profiles and what ACME clients did there."""

    app: str
    app_id: UUID
    profiles: tuple[str, str]
    accounts: dict[str, UUID]
    orders: dict[str, UUID]
    request_ids: dict[str, UUID]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enrollment(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def acme(admin: httpx.AsyncClient, api_app: Any, enrollment: Enrollment) -> Acme:
    """Accounts `alice` (profile 1, three orders) and `bob` (profile 2, deactivated, one order).

    alice's orders: `pending` (two authorizations: one challenge valid, one failed),
    `issued` (processing; its request was issued), `failed` (processing; its request failed).
    """
    second = await enroll(admin)
    app = await enroll_new_application(
        admin, enrollment.root, enrollment.issuing, enrollment.policy, _profile(enrollment)
    )
    ok(await admin.put(f"{API}/applications/{app.app}/profiles/{second.profile}"), 201)
    app_id, p1, p2 = UUID(app.app_id), UUID(enrollment.profile_id), UUID(second.profile_id)
    async with api_app.state.certforge.sessions() as session:
        alice = AcmeAccount(
            application_id=app_id,
            profile_id=p1,
            jwk=JWK,
            jwk_thumbprint="alice-thumbprint",
            contact=["mailto:alice@example.com"],
            terms_agreed=True,
            created_at=T0,
        )
        bob = AcmeAccount(
            application_id=app_id,
            profile_id=p2,
            status="deactivated",
            jwk=JWK,
            jwk_thumbprint="bob-thumbprint",
            created_at=T0 + timedelta(minutes=1),
        )
        session.add_all([alice, bob])
        await session.flush()
        issued = CertificateRequest(
            application_id=app_id,
            profile_id=p1,
            method="csr",
            status="issued",
            certificate_id=uuid4(),
        )
        failed = CertificateRequest(
            application_id=app_id,
            profile_id=p1,
            method="csr",
            status="failed",
            error="the CA is disabled",
        )
        session.add_all([issued, failed])
        await session.flush()
        expires = T0 + timedelta(days=7)
        orders = {
            "pending": AcmeOrder(
                account_id=alice.id,
                application_id=app_id,
                profile_id=p1,
                identifiers=[
                    {"type": "dns", "value": "www.example.com"},
                    {"type": "dns", "value": "*.example.com"},
                ],
                expires_at=expires,
                created_at=T0 + timedelta(minutes=2),
            ),
            "issued": AcmeOrder(
                account_id=alice.id,
                application_id=app_id,
                profile_id=p1,
                status="processing",
                identifiers=[{"type": "ip", "value": "10.1.2.3"}],
                expires_at=expires,
                request_id=issued.id,
                created_at=T0 + timedelta(minutes=3),
            ),
            "failed": AcmeOrder(
                account_id=alice.id,
                application_id=app_id,
                profile_id=p1,
                status="processing",
                identifiers=[{"type": "dns", "value": "api.example.com"}],
                expires_at=expires,
                request_id=failed.id,
                created_at=T0 + timedelta(minutes=4),
            ),
            "bob": AcmeOrder(
                account_id=bob.id,
                application_id=app_id,
                profile_id=p2,
                status="invalid",
                identifiers=[{"type": "dns", "value": "bob.example.com"}],
                expires_at=expires,
                error=acme_problem(ErrorType.UNAUTHORIZED, "bob was deactivated", status=403),
                created_at=T0 + timedelta(minutes=5),
            ),
        }
        session.add_all(orders.values())
        await session.flush()
        www = AcmeAuthorization(
            order_id=orders["pending"].id,
            account_id=alice.id,
            identifier_type="dns",
            identifier_value="www.example.com",
            status="valid",
            expires_at=expires,
            created_at=T0,
        )
        wildcard = AcmeAuthorization(
            order_id=orders["pending"].id,
            account_id=alice.id,
            identifier_type="dns",
            identifier_value="example.com",
            wildcard=True,
            status="invalid",
            expires_at=expires,
            created_at=T0 + timedelta(seconds=1),
        )
        session.add_all([www, wildcard])
        await session.flush()
        session.add_all(
            [
                AcmeChallenge(
                    authorization_id=www.id,
                    type="http-01",
                    token="t1",
                    status="valid",
                    attempts=1,
                    validated_at=T0,
                    created_at=T0,
                ),
                AcmeChallenge(
                    authorization_id=www.id,
                    type="dns-01",
                    token="t2",
                    created_at=T0 + timedelta(seconds=1),
                ),
                AcmeChallenge(
                    authorization_id=wildcard.id,
                    type="dns-01",
                    token="t3",
                    status="invalid",
                    attempts=1,
                    error=acme_problem(ErrorType.DNS, "no TXT record at _acme-challenge"),
                ),
            ]
        )
        await session.commit()
        return Acme(
            app=app.app,
            app_id=app_id,
            profiles=(enrollment.profile, second.profile),
            accounts={"alice": alice.id, "bob": bob.id},
            orders={name: order.id for name, order in orders.items()},
            request_ids={"issued": issued.id, "failed": failed.id},
        )


def _profile(enrollment: Enrollment) -> dict[str, Any]:
    return {"slug": enrollment.profile, "id": enrollment.profile_id}


def _cursor(created_at: str, row_id: str) -> str:
    """A cursor as the API makes them, with values it would never put there."""
    return base64.urlsafe_b64encode(json.dumps([created_at, row_id]).encode()).decode()


def _accounts(acme: Acme) -> str:
    return f"{API}/applications/{acme.app}/acme/accounts"


def _orders(acme: Acme) -> str:
    return f"{API}/applications/{acme.app}/acme/orders"


async def _ids(client: httpx.AsyncClient, url: str, **params: Any) -> list[str]:
    return [item["id"] for item in ok(await client.get(url, params=params))["items"]]


async def test_accounts_list_filter_page_and_detail(admin: httpx.AsyncClient, acme: Acme) -> None:
    alice, bob = str(acme.accounts["alice"]), str(acme.accounts["bob"])
    assert await _ids(admin, _accounts(acme)) == [bob, alice]
    assert await _ids(admin, _accounts(acme), profile=acme.profiles[0]) == [alice]
    assert await _ids(admin, _accounts(acme), status="deactivated") == [bob]
    assert await _ids(admin, _accounts(acme), status="revoked") == []
    first = ok(await admin.get(_accounts(acme), params={"limit": 1}))
    assert [a["id"] for a in first["items"]] == [bob]
    rest = ok(await admin.get(_accounts(acme), params={"limit": 1, "cursor": first["next_cursor"]}))
    assert [a["id"] for a in rest["items"]] == [alice]
    assert rest["next_cursor"] is None

    detail = ok(await admin.get(f"{_accounts(acme)}/{alice}"))
    assert detail == {
        "id": alice,
        "profile": acme.profiles[0],
        "status": "valid",
        "contact": ["mailto:alice@example.com"],
        "key_thumbprint": "alice-thumbprint",
        "eab_key_id": None,
        "terms_agreed": True,
        "created_at": detail["created_at"],
        "updated_at": detail["updated_at"],
        # Its two processing orders count as their certificate requests came out.
        "orders": {"pending": 1, "ready": 0, "processing": 0, "valid": 1, "invalid": 1},
    }
    assert datetime.fromisoformat(detail["created_at"]) == T0

    for params, field, status in (
        ({"status": "sleeping"}, "status", 422),
        ({"limit": 0}, "limit", 422),
        ({"limit": 501}, "limit", 422),
        ({"cursor": "not-a-cursor"}, "cursor", 400),
        ({"profile": "no-such-profile"}, "profile", 404),
    ):
        problem(await admin.get(_accounts(acme), params=params), status, field)
    problem(await admin.get(f"{_accounts(acme)}/{uuid4()}"), 404, "account_id")
    problem(await admin.get(f"{_accounts(acme)}/not-a-uuid"), 422, "account_id")


async def test_orders_list_filter_and_detail(admin: httpx.AsyncClient, acme: Acme) -> None:
    o = {name: str(order_id) for name, order_id in acme.orders.items()}
    alice = str(acme.accounts["alice"])
    assert await _ids(admin, _orders(acme)) == [o["bob"], o["failed"], o["issued"], o["pending"]]
    alices = [o["failed"], o["issued"], o["pending"]]
    assert await _ids(admin, _orders(acme), account=alice) == alices
    assert await _ids(admin, _orders(acme), profile=acme.profiles[1]) == [o["bob"]]
    assert await _ids(admin, _orders(acme), status="pending") == [o["pending"]]
    # The status filter sees what the orders show (see below), not the stored `processing`.
    assert await _ids(admin, _orders(acme), status="valid") == [o["issued"]]
    assert await _ids(admin, _orders(acme), status="invalid") == [o["bob"], o["failed"]]
    assert await _ids(admin, _orders(acme), status="processing") == []
    assert await _ids(admin, _orders(acme), account=str(uuid4())) == []
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = ok(await admin.get(_orders(acme), params=params))
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[o["bob"], o["failed"], o["issued"]], [o["pending"]]]

    # A processing order reads as its certificate request came out.
    listed = {item["id"]: item for item in ok(await admin.get(_orders(acme)))["items"]}
    issued = listed[o["issued"]]
    assert issued["status"] == "valid"
    assert issued["request_id"] == str(acme.request_ids["issued"])
    assert issued["certificate_id"] is not None
    failed = listed[o["failed"]]
    assert failed["status"] == "invalid"
    assert failed["request_error"] == "the CA is disabled"
    assert failed["certificate_id"] is None
    assert listed[o["bob"]]["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"

    detail = ok(await admin.get(f"{_orders(acme)}/{o['pending']}"))
    assert detail["status"] == "pending"
    assert detail["account_id"] == alice
    assert detail["profile"] == acme.profiles[0]
    assert detail["identifiers"] == [
        {"type": "dns", "value": "www.example.com"},
        {"type": "dns", "value": "*.example.com"},
    ]
    assert detail["request_id"] is None
    www, wildcard = detail["authorizations"]
    assert www["identifier"] == {"type": "dns", "value": "www.example.com"}
    assert (www["status"], www["wildcard"]) == ("valid", False)
    assert [(c["type"], c["status"], c["attempts"]) for c in www["challenges"]] == [
        ("http-01", "valid", 1),
        ("dns-01", "pending", 0),
    ]
    assert datetime.fromisoformat(www["challenges"][0]["validated_at"]) == T0
    assert www["challenges"][1]["error"] is None
    assert (wildcard["identifier"]["value"], wildcard["wildcard"]) == ("example.com", True)
    (failed_challenge,) = wildcard["challenges"]
    assert failed_challenge["error"] == {
        "type": "urn:ietf:params:acme:error:dns",
        "detail": "no TXT record at _acme-challenge",
        "status": 400,
    }
    no_authz = ok(await admin.get(f"{_orders(acme)}/{o['bob']}"))
    assert no_authz["authorizations"] == []
    assert no_authz["status"] == "invalid"

    for params, field, status in (
        ({"status": "deactivated"}, "status", 422),
        ({"account": "alice"}, "account", 422),
        ({"cursor": "eyJ4IjoxfQ"}, "cursor", 400),
        ({"cursor": _cursor("2026-01-01T00:00:00", str(uuid4()))}, "cursor", 400),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00", "7")}, "cursor", 400),
        ({"profile": str(uuid4())}, "profile", 404),
    ):
        problem(await admin.get(_orders(acme), params=params), status, field)
    problem(await admin.get(f"{_orders(acme)}/{uuid4()}"), 404, "order_id")


async def test_roles_and_tenancy_of_reads_and_deactivation(
    admin: httpx.AsyncClient, client_for: ClientFor, acme: Acme
) -> None:
    alice = acme.accounts["alice"]
    other = await create_application(admin)
    outsider = await member(admin, client_for, other["slug"], "application-admin")
    auditor = await member(admin, client_for, acme.app, "auditor")
    operator = await member(admin, client_for, acme.app, "operator")
    for reader in (auditor, operator):
        assert len(ok(await reader.get(_accounts(acme)))["items"]) == 2
        assert ok(await reader.get(f"{_accounts(acme)}/{alice}"))["id"] == str(alice)
        assert len(ok(await reader.get(_orders(acme)))["items"]) == 4
        order = acme.orders["pending"]
        assert ok(await reader.get(f"{_orders(acme)}/{order}"))["id"] == str(order)
        problem(await reader.post(f"{_accounts(acme)}/{alice}/deactivate"), 403)
    for path in (
        _accounts(acme),
        f"{_accounts(acme)}/{alice}",
        _orders(acme),
        f"{_orders(acme)}/{acme.orders['pending']}",
    ):
        problem(await outsider.get(path), 404, "app")
    problem(await outsider.post(f"{_accounts(acme)}/{alice}/deactivate"), 404, "app")
    # Named through another application, this one's account and order do not exist.
    elsewhere = f"{API}/applications/{other['slug']}/acme"
    problem(await admin.get(f"{elsewhere}/accounts/{alice}"), 404, "account_id")
    problem(await admin.post(f"{elsewhere}/accounts/{alice}/deactivate"), 404, "account_id")
    problem(await admin.get(f"{elsewhere}/orders/{acme.orders['pending']}"), 404, "order_id")
    assert ok(await admin.get(f"{elsewhere}/accounts"))["items"] == []
    assert ok(await admin.get(f"{elsewhere}/orders"))["items"] == []
    assert ok(await admin.get(f"{_accounts(acme)}/{alice}"))["status"] == "valid"


async def test_deactivate_account(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any, enrollment: Enrollment
) -> None:
    app = await enroll_new_application(
        admin, enrollment.root, enrollment.issuing, enrollment.policy, _profile(enrollment)
    )
    async with api_app.state.certforge.sessions() as session:
        account = AcmeAccount(
            application_id=UUID(app.app_id),
            profile_id=UUID(enrollment.profile_id),
            jwk=JWK,
            jwk_thumbprint="carol-thumbprint",
        )
        session.add(account)
        await session.commit()
        account_id = account.id
    app_admin = await member(admin, client_for, app.app, "application-admin")
    url = f"{API}/applications/{app.app}/acme/accounts/{account_id}"
    done = ok(await app_admin.post(f"{url}/deactivate"))
    assert done["status"] == "deactivated"
    assert done["updated_at"] > done["created_at"]
    again = ok(await app_admin.post(f"{url}/deactivate"))
    assert again == done, "final: deactivating again changes nothing"
    assert ok(await admin.get(url))["status"] == "deactivated"
    entries = ok(
        await admin.get(
            f"{API}/audit-events",
            params={"application": app.app, "action": "acme.account.deactivate"},
        )
    )["items"]
    assert [(e["resource_id"], e["details"]["was"]) for e in entries] == [
        (str(account_id), "deactivated"),
        (str(account_id), "valid"),
    ]
    problem(
        await app_admin.post(f"{API}/applications/{app.app}/acme/accounts/{uuid4()}/deactivate"),
        404,
        "account_id",
    )
