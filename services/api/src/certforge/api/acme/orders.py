"""ACME orders (RFC 8555 §7.4): creation with one authorization per identifier, reading with
the status derived from what happened since, and the account's orders list.

The order state machine has one writer per transition: newOrder creates it `pending`; the
validator moves it `pending → ready | invalid`; finalize moves it `ready → processing`; the
api derives `processing → valid | invalid` from the certificate request finalize wrote, and
`pending | ready → invalid` once it expired, persisting each derived status lazily, when read,
with a guarded UPDATE (so concurrent readers agree and nothing is written twice).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from certforge.api.acme import identifiers as ids
from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import AcmeProblem, malformed, not_found, unauthorized
from certforge.api.acme.urls import AcmeUrls
from certforge.api.context import ApiContext
from certforge.api.schemas.common import decode_cursor as decode
from certforge.api.schemas.common import encode_cursor as encode
from certforge.common.acme import (
    AriCertId,
    ChallengeType,
    ErrorType,
    Status,
    b64url,
    challenge_types_for,
    problem,
)
from certforge.common.db.pool import Database, Row
from certforge.common.domain import RequestStatus
from certforge.common.issuance import ProfileDefaults
from certforge.common.name_constraints import chain_constraints
from certforge.common.policy import PolicyDocument

PAGE_SIZE = 50


def new_token() -> str:
    """A challenge token: base64url of 32 random bytes (RFC 8555 §8.3 asks for ≥ 128 bits)."""
    return b64url(secrets.token_bytes(32))


@dataclass(frozen=True)
class PlannedChallenge:
    id: UUID
    type: ChallengeType
    token: str


@dataclass(frozen=True)
class PlannedAuthorization:
    id: UUID
    identifier: ids.Identifier
    challenges: list[PlannedChallenge]


@dataclass(frozen=True)
class OrderPlan:
    id: UUID
    expires_at: datetime
    identifiers: list[ids.Identifier]
    authorizations: list[PlannedAuthorization] = field(default_factory=list)


def plan_order(
    identifiers: Sequence[ids.Identifier],
    allowed: Sequence[str],
    now: datetime,
    lifetime: timedelta,
    new_id: Callable[[], UUID] = uuid4,
    token: Callable[[], str] = new_token,
) -> OrderPlan:
    """The order, its authorizations and their challenges (pure: ids, tokens and clock are
    parameters). An identifier no allowed challenge type can prove is refused (a wildcard
    needs dns-01; an IP address cannot use dns-01)."""
    subproblems = []
    authorizations = []
    for identifier in identifiers:
        kinds = challenge_types_for(identifier.type, identifier.wildcard, list(allowed))
        if not kinds:
            subproblems.append(
                problem(
                    ErrorType.REJECTED_IDENTIFIER,
                    f"no challenge type allowed here ({', '.join(allowed) or 'none'}) can prove "
                    f"{'a wildcard' if identifier.wildcard else 'this identifier'}",
                    identifier=identifier.json(),
                )
            )
            continue
        challenges = [PlannedChallenge(new_id(), kind, token()) for kind in kinds]
        authorizations.append(PlannedAuthorization(new_id(), identifier, challenges))
    if subproblems:
        raise AcmeProblem(
            ErrorType.REJECTED_IDENTIFIER,
            subproblems[0]["detail"],
            subproblems=subproblems,
        )
    return OrderPlan(new_id(), now + lifetime, list(identifiers), authorizations)


_INSERT_ORDER_SQL = """
INSERT INTO acme_orders (id, account_id, application_id, profile_id, status, identifiers,
                         expires_at, replaces, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $8)
"""
_INSERT_AUTHZ_SQL = """
INSERT INTO acme_authorizations (id, order_id, account_id, identifier_type, identifier_value,
                                 wildcard, status, expires_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $8)
"""
_INSERT_CHALLENGE_SQL = """
INSERT INTO acme_challenges (id, authorization_id, type, token, status, attempts, created_at,
                             updated_at)
VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)
"""
_REPLACED_SQL = """
SELECT c.id FROM certificates c JOIN certificate_authorities ca ON ca.id = c.ca_id
WHERE c.application_id = $1 AND c.serial_number = $2 AND ca.subject_key_id = $3
"""
_ALREADY_REPLACED_SQL = """
SELECT 1 FROM acme_orders WHERE application_id = $1 AND replaces = $2 AND status <> 'invalid'
LIMIT 1
"""
ORDER_SQL = "SELECT * FROM acme_orders WHERE id = $1 AND application_id = $2 AND profile_id = $3"
_AUTHZ_IDS_SQL = """
SELECT id FROM acme_authorizations WHERE order_id = $1 ORDER BY created_at, identifier_value
"""
_REQUEST_SQL = "SELECT status, error, certificate_id FROM certificate_requests WHERE id = $1"
_SETTLE_SQL = """
UPDATE acme_orders SET status = $3, error = $4, certificate_id = $5, updated_at = $6
WHERE id = $1 AND status = $2 RETURNING *
"""
_LIST_SQL = """
SELECT id, created_at FROM acme_orders
WHERE account_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
ORDER BY created_at DESC, id DESC LIMIT $4
"""


async def create(
    context: ApiContext,
    target: AcmeTarget,
    account: Row,
    payload: dict[str, Any],
    now: datetime,
) -> Row:
    """newOrder: check the identifiers against the profile, then store the order with its
    authorizations and challenges in one transaction."""
    if "notBefore" in payload or "notAfter" in payload:
        raise malformed("notBefore and notAfter are not supported: the profile sets the validity")
    target.check_issuable()
    identifiers = ids.parse(payload.get("identifiers"))
    subproblems = ids.rejected(
        identifiers,
        PolicyDocument.model_validate(target.row["policy_document"]),
        str(target.row["policy_name"]),
        chain_constraints(
            target.row["ca_name_constraints"], target.row["ca_chain_name_constraints"]
        ),
        ProfileDefaults.model_validate(target.row["defaults"]),
        now,
    )
    if subproblems:
        raise AcmeProblem(
            ErrorType.REJECTED_IDENTIFIER,
            f"the profile refuses {len(subproblems)} identifier(s): " + subproblems[0]["detail"],
            subproblems=subproblems,
        )
    replaces = await _replaces(context.db, target, payload.get("replaces"))
    lifetime = timedelta(seconds=context.settings.acme_order_lifetime_seconds)
    plan = plan_order(identifiers, target.challenge_types, now, lifetime)
    async with context.db.acquire() as conn, conn.transaction():
        await conn.execute(
            _INSERT_ORDER_SQL,
            plan.id,
            account["id"],
            target.app_id,
            target.profile_id,
            [i.json() for i in plan.identifiers],
            plan.expires_at,
            replaces,
            now,
        )
        await conn.executemany(
            _INSERT_AUTHZ_SQL,
            [
                (
                    a.id,
                    plan.id,
                    account["id"],
                    a.identifier.type.value,
                    a.identifier.base,
                    a.identifier.wildcard,
                    plan.expires_at,
                    now,
                )
                for a in plan.authorizations
            ],
        )
        await conn.executemany(
            _INSERT_CHALLENGE_SQL,
            [
                (c.id, a.id, c.type.value, c.token, now)
                for a in plan.authorizations
                for c in a.challenges
            ],
        )
        row = await conn.fetchrow(ORDER_SQL, plan.id, target.app_id, target.profile_id)
    assert row is not None
    return row


async def _replaces(db: Database, target: AcmeTarget, value: object) -> str | None:
    """RFC 9773 §5: the certificate an order replaces must be one of this application's, and
    not already replaced by another order."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise malformed("'replaces' must be an ARI certificate identifier")
    try:
        cert_id = AriCertId.parse(value)
    except (ValueError, IndexError):
        raise malformed("'replaces' is not an ARI certificate identifier") from None
    found = await db.fetchval(
        _REPLACED_SQL,
        target.app_id,
        format(cert_id.serial_number, "x"),
        cert_id.key_identifier.hex(),
    )
    if found is None:
        raise malformed("'replaces' names no certificate of this application", 404)
    canonical = str(cert_id)
    if await db.fetchval(_ALREADY_REPLACED_SQL, target.app_id, canonical):
        raise AcmeProblem(
            ErrorType.ALREADY_REPLACED, "another order already replaces this certificate", 409
        )
    return canonical


async def owned(context: ApiContext, target: AcmeTarget, account: Row, order_id: UUID) -> Row:
    """The order if it belongs to `account`: 404 when it does not exist, unauthorized when it
    is another account's."""
    row = await context.db.fetchrow(ORDER_SQL, order_id, target.app_id, target.profile_id)
    if row is None:
        raise not_found(f"no order {order_id}")
    if row["account_id"] != account["id"]:
        raise unauthorized("this order belongs to another account")
    return row


@dataclass(frozen=True)
class Settled:
    """An order's status as of now, and what changed to get there."""

    status: str
    error: dict[str, Any] | None
    certificate_id: UUID | None


def settle(order: Row, request: Row | None, now: datetime) -> Settled:
    """Pure: the status an order has now. Expired pending/ready orders are invalid; a
    processing order follows its certificate request (issued → valid, failed or rejected →
    invalid with the request's error as a problem)."""
    status = order["status"]
    error, certificate_id = order["error"], order["certificate_id"]
    if status in (Status.PENDING, Status.READY) and order["expires_at"] <= now:
        return Settled(
            Status.INVALID, problem(ErrorType.MALFORMED, "the order expired", status=403), None
        )
    if status == Status.PROCESSING and request is not None:
        if request["status"] == RequestStatus.ISSUED:
            return Settled(Status.VALID, None, request["certificate_id"])
        if request["status"] in (RequestStatus.FAILED, RequestStatus.REJECTED):
            kind = (
                ErrorType.BAD_CSR
                if request["status"] == RequestStatus.REJECTED
                else ErrorType.SERVER_INTERNAL
            )
            detail = str(request["error"] or "the certificate could not be issued")
            return Settled(Status.INVALID, problem(kind, detail[:1000], status=400), None)
    return Settled(status, error, certificate_id)


async def current(context: ApiContext, order: Row, now: datetime) -> Row:
    """The order with its derived status persisted (see `settle`)."""
    request = None
    if order["status"] == Status.PROCESSING and order["request_id"] is not None:
        request = await context.db.fetchrow(_REQUEST_SQL, order["request_id"])
    settled = settle(order, request, now)
    if settled.status == order["status"]:
        return order
    row = await context.db.fetchrow(
        _SETTLE_SQL,
        order["id"],
        order["status"],
        settled.status,
        settled.error,
        settled.certificate_id,
        now,
    )
    if row is None:  # another reader (or the validator) moved it first
        row = await context.db.fetchrow(
            ORDER_SQL, order["id"], order["application_id"], order["profile_id"]
        )
        assert row is not None
    return row


async def order_json(context: ApiContext, urls: AcmeUrls, order: Row) -> dict[str, Any]:
    """The order object (RFC 8555 §7.1.3)."""
    authz_ids = await context.db.fetch(_AUTHZ_IDS_SQL, order["id"])
    body: dict[str, Any] = {
        "status": order["status"],
        "expires": _time(order["expires_at"]),
        "identifiers": list(order["identifiers"]),
        "authorizations": [urls.authorization(r["id"]) for r in authz_ids],
        "finalize": urls.finalize(order["id"]),
    }
    if order["error"]:
        body["error"] = order["error"]
    if order["status"] == Status.VALID and order["certificate_id"] is not None:
        body["certificate"] = urls.certificate(order["certificate_id"])
    if order["replaces"]:
        body["replaces"] = order["replaces"]
    return body


async def page(
    context: ApiContext, account_id: UUID, cursor: str | None
) -> tuple[list[UUID], str | None]:
    """One page of the account's orders, newest first, and the cursor of the next page."""
    after: datetime | None = None
    last: UUID | None = None
    if cursor is not None:
        try:
            after, last_text = decode(cursor)
            last = UUID(last_text)
        except Exception:
            raise malformed("the orders cursor is not one this server gave") from None
    rows = await context.db.fetch(_LIST_SQL, account_id, after, last, PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_cursor = encode(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
    return [r["id"] for r in rows], next_cursor


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
