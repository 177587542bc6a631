"""The role-by-route matrix (issue 20): every authenticated operation of the served OpenAPI
document by every role by the caller's own application and a foreign one, each cell asserting
the exact allow or deny. Anonymous callers are asked once per route: without a token, the
application does not matter.

The operations come from the document, so a new route fails `test_every_route_has_a_rule`
until it is given its rule here. A cell is *allowed* when the answer is neither 401 nor 403 nor
a 404 about the application (the request itself may still be refused for its content: an id
that names nothing, a state that forbids it); a *denial* is exactly 401 (anonymous), 403 (a
role too low, or a product-admin route) or a 404 naming `app` (an application the caller is not
a member of: never 403, so that it cannot tell which applications exist). Bodies are the
document's own examples (valid, `test_openapi_examples.py`), so that a denial is the role
check's and not validation's. The product admin's cells run last, the application's deletion
last of all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from admin_kit import (
    API,
    ClientFor,
    create_application,
    create_identity,
    create_policy,
    create_profile,
    create_root,
    ok,
    put_member,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROLES = ("application-admin", "operator", "auditor", "no-role", "anonymous", "product-admin")
MEMBER_ROLES = {"application-admin", "operator", "auditor"}
ACCESS = {
    "read": {"application-admin", "operator", "auditor"},
    "operate": {"application-admin", "operator"},
    "admin": {"application-admin"},
}
AUDIT_READERS = {"product-admin", "application-admin", "auditor"}
"""The audit log (its entries filtered to the reader's applications): not for operators."""
A = "/api/v1/applications/{app}"

RULES: dict[str, str] = {
    # any authenticated identity; what it sees is filtered to its applications
    "GET /api/v1/me": "any",
    "GET /api/v1/applications": "any",
    "GET /api/v1/certificates": "any",
    "GET /api/v1/audit-events": "audit",
    # one application: the roles of ACCESS, a 404 for anyone not a member
    f"GET {A}": "read",
    f"GET {A}/members": "read",
    f"GET {A}/members/{{identity_id}}": "read",
    f"PUT {A}/members/{{identity_id}}": "admin",
    f"DELETE {A}/members/{{identity_id}}": "admin",
    f"GET {A}/profiles": "read",
    f"GET {A}/profiles/{{profile}}": "read",
    f"GET {A}/profiles/{{profile}}/enrollment/api": "read",
    f"PUT {A}/profiles/{{profile}}/enrollment/api": "admin",
    f"GET {A}/profiles/{{profile}}/enrollment/acme": "read",
    f"PUT {A}/profiles/{{profile}}/enrollment/acme": "admin",
    f"GET {A}/profiles/{{profile}}/enrollment/acme/eab-keys": "read",
    f"POST {A}/profiles/{{profile}}/enrollment/acme/eab-keys": "admin",
    f"GET {A}/profiles/{{profile}}/enrollment/acme/eab-keys/{{key_id}}": "read",
    f"DELETE {A}/profiles/{{profile}}/enrollment/acme/eab-keys/{{key_id}}": "admin",
    f"GET {A}/acme/accounts": "read",
    f"GET {A}/acme/accounts/{{account_id}}": "read",
    f"POST {A}/acme/accounts/{{account_id}}/deactivate": "admin",
    f"GET {A}/acme/orders": "read",
    f"GET {A}/acme/orders/{{order_id}}": "read",
    f"GET {A}/certificate-requests": "read",
    f"POST {A}/certificate-requests": "operate",
    f"GET {A}/certificate-requests/{{request_id}}": "read",
    f"GET {A}/certificates": "read",
    f"GET {A}/certificates/{{certificate_id}}": "read",
    f"PATCH {A}/certificates/{{certificate_id}}": "operate",
    f"GET {A}/certificates/{{certificate_id}}/pem": "read",
    f"GET {A}/certificates/{{certificate_id}}/chain": "read",
    f"GET {A}/certificates/{{certificate_id}}/bundle": "read",
    f"GET {A}/certificates/{{certificate_id}}/der": "read",
    f"GET {A}/certificates/{{certificate_id}}/successor": "read",
    f"GET {A}/certificates/{{certificate_id}}/private-key": "operate",
    f"POST {A}/certificates/{{certificate_id}}/pkcs12": "operate",
    f"POST {A}/certificates/{{certificate_id}}/renew": "operate",
    f"POST {A}/certificates/{{certificate_id}}/early-renewal": "operate",
    f"POST {A}/certificates/{{certificate_id}}/revoke": "operate",
    f"GET {A}/syncs": "read",
    f"POST {A}/syncs": "admin",
    f"GET {A}/syncs/{{sync_id}}": "read",
    f"PATCH {A}/syncs/{{sync_id}}": "admin",
    f"DELETE {A}/syncs/{{sync_id}}": "admin",
    f"GET {A}/syncs/{{sync_id}}/certificates": "read",
    f"POST {A}/syncs/{{sync_id}}/run": "admin",
    f"POST {A}/syncs/{{sync_id}}/test": "admin",
    f"GET {A}/alerts": "read",
    f"POST {A}/alerts": "admin",
    f"GET {A}/alerts/{{alert_id}}": "read",
    f"PATCH {A}/alerts/{{alert_id}}": "admin",
    f"DELETE {A}/alerts/{{alert_id}}": "admin",
    f"GET {A}/alerts/{{alert_id}}/deliveries": "read",
    f"POST {A}/alerts/{{alert_id}}/test": "admin",
    # product admins only, whichever application (403 to everyone else alike)
    "POST /api/v1/applications": "product",
    f"PATCH {A}": "product",
    f"DELETE {A}": "product",
    f"PUT {A}/profiles/{{profile}}": "product",
    f"DELETE {A}/profiles/{{profile}}": "product",
}
for _path in (
    "/api/v1/cas",
    "/api/v1/policies",
    "/api/v1/profiles",
    "/api/v1/identities",
):
    RULES[f"GET {_path}"] = RULES[f"POST {_path}"] = "product"
for _rule in (
    "POST /api/v1/cas/import",
    "GET /api/v1/cas/{ca_id}",
    "POST /api/v1/cas/{ca_id}/disable",
    "POST /api/v1/cas/{ca_id}/enable",
    "POST /api/v1/cas/{ca_id}/early-renewal",
    "POST /api/v1/cas/{ca_id}/renew",
    "POST /api/v1/cas/{ca_id}/rekey",
    "POST /api/v1/cas/{ca_id}/take-over",
    "POST /api/v1/cas/{ca_id}/cross-sign",
    # the whole log's chain; an application's (`?application=`) is its admins' and auditors'
    "GET /api/v1/audit-events/verification",
    "GET /api/v1/policies/{policy_id}",
    "PATCH /api/v1/policies/{policy_id}",
    "DELETE /api/v1/policies/{policy_id}",
    "GET /api/v1/profiles/{profile}",
    "PATCH /api/v1/profiles/{profile}",
    "DELETE /api/v1/profiles/{profile}",
    "GET /api/v1/identities/{identity_id}",
    "DELETE /api/v1/identities/{identity_id}",
    "GET /api/v1/identities/{identity_id}/tokens",
    "POST /api/v1/identities/{identity_id}/tokens",
    "DELETE /api/v1/identities/{identity_id}/tokens/{token_id}",
    "GET /api/v1/identities/{identity_id}/auth-methods",
    "POST /api/v1/identities/{identity_id}/auth-methods",
    "GET /api/v1/identities/{identity_id}/auth-methods/{method_id}",
    "PUT /api/v1/identities/{identity_id}/auth-methods/{method_id}",
    "DELETE /api/v1/identities/{identity_id}/auth-methods/{method_id}",
    "GET /api/v1/identities/{identity_id}/certificate-bindings",
    "POST /api/v1/identities/{identity_id}/certificate-bindings",
    "DELETE /api/v1/identities/{identity_id}/certificate-bindings/{binding_id}",
):
    RULES[_rule] = "product"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body: Any

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class World:
    own: str
    foreign: str
    profile: str
    clients: dict[str, httpx.AsyncClient]


def _example(document: dict[str, Any], operation: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = content["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    examples = content.get("examples") or schema.get("examples") or [{}]
    return examples[0] if isinstance(examples, list) else next(iter(examples.values()))["value"]


def _operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):
                yield Operation(method.upper(), path, _example(document, operation))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def document(anonymous: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = ok(await anonymous.get("/openapi.json"))
    return result


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(admin: httpx.AsyncClient, client_for: ClientFor) -> World:
    root = await create_root(admin)
    profile = await create_profile(admin, root["id"], (await create_policy(admin))["id"])
    own, foreign = (
        (await create_application(admin))["slug"],
        (await create_application(admin))["slug"],
    )
    for app in (own, foreign):
        ok(await admin.put(f"{API}/applications/{app}/profiles/{profile['slug']}"), 201)
    clients = {"product-admin": admin, "anonymous": client_for(None)}
    for role in (*MEMBER_ROLES, "no-role"):
        identity = await create_identity(admin)
        if role in MEMBER_ROLES:
            await put_member(admin, own, identity["id"], role)
        clients[role] = client_for(identity["token"])
    return World(own, foreign, profile["slug"], clients)


async def test_every_route_has_a_rule(document: dict[str, Any]) -> None:
    keys = {o.key for o in _operations(document)}
    assert sorted(keys - set(RULES)) == [], "give each new route its rule in RULES"
    assert sorted(set(RULES) - keys) == [], "a rule for a route that is gone"


def _expected(rule: str, role: str, own: bool) -> str:
    """`allow`, or the denial: `401`, `403` or `404` (naming the application)."""
    if role == "anonymous":
        return "401"
    if role == "product-admin" or rule == "any":
        return "allow"
    if rule == "product":
        return "403"
    if rule == "audit":
        return "allow" if role in AUDIT_READERS else "403"
    if not own or role not in MEMBER_ROLES:
        return "404"
    return "allow" if role in ACCESS[rule] else "403"


def _outcome(response: httpx.Response) -> str:
    if response.status_code in (401, 403):
        return str(response.status_code)
    if response.status_code == 404 and response.headers["content-type"].startswith(
        "application/problem+json"
    ):
        fields = [e["field"] for e in response.json().get("errors", [])]
        if "app" in fields:
            return "404"
    return "allow"


def _url(operation: Operation, app: str, profile: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return {"app": app, "profile": profile}.get(name, str(uuid.uuid4()))

    return re.sub(r"\{([^}]+)\}", value, operation.path)


def _cells(document: dict[str, Any]) -> list[tuple[str, Operation, bool]]:
    operations = sorted(_operations(document), key=lambda o: o.key == f"DELETE {A}")
    cells = [
        (role, op, own)
        for role in ROLES
        for op in operations
        for own in ((True,) if role == "anonymous" else (True, False))
    ]
    return sorted(cells, key=lambda c: (c[1].key == f"DELETE {A}", c[0] == "product-admin"))


async def test_every_role_on_every_route(document: dict[str, Any], world: World) -> None:
    wrong = []
    cells = _cells(document)
    for role, operation, own in cells:
        url = _url(operation, world.own if own else world.foreign, world.profile)
        response = await world.clients[role].request(operation.method, url, json=operation.body)
        expected = _expected(RULES[operation.key], role, own)
        got = _outcome(response)
        # 503: allowed, but a worker it needs is not running here (the notifier, for alerts)
        if got != expected or response.status_code in (500, 502, 504):
            where = "own" if own else "foreign"
            wrong.append(
                f"{role:17} {where:7} {operation.key}: want {expected}, got "
                f"{response.status_code} {response.text[:160]}"
            )
    assert wrong == [], f"{len(wrong)} of {len(cells)} cells:\n" + "\n".join(wrong)
