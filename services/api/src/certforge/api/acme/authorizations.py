"""Authorizations and challenges (RFC 8555 §7.5): reading them, deactivating an
authorization, and answering a challenge.

Answering a challenge is the api's only part of validation: a guarded UPDATE moves it
`pending → processing` and, in the same transaction, the outbox takes the ValidateChallenge
command for the validator (the service that reaches out to the client's machines). A challenge
posted twice, or while another challenge of its authorization is being validated, is answered
with its current state and queues nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import malformed, not_found, unauthorized
from certforge.api.acme.signed import Signed
from certforge.api.acme.urls import AcmeUrls
from certforge.api.context import ApiContext
from certforge.common.acme import ErrorType, Status, problem
from certforge.common.contracts.commands import ValidateChallenge
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.db.columns import insert_sql, values
from certforge.common.db.pool import Row
from certforge.common.db.tables import OutboxMessage
from certforge.common.outbox import MESSAGE_COLUMNS, message_row

SOURCE = "/certforge/api"

_AUTHZ_SQL = """
SELECT z.*, o.application_id, o.profile_id, o.status AS order_status
FROM acme_authorizations z JOIN acme_orders o ON o.id = z.order_id
WHERE z.id = $1 AND o.application_id = $2 AND o.profile_id = $3
"""
_CHALLENGES_SQL = """
SELECT * FROM acme_challenges WHERE authorization_id = $1 ORDER BY type
"""
_CHALLENGE_SQL = """
SELECT c.*, z.account_id, z.status AS authz_status, z.expires_at AS authz_expires_at
FROM acme_challenges c
JOIN acme_authorizations z ON z.id = c.authorization_id
JOIN acme_orders o ON o.id = z.order_id
WHERE c.id = $1 AND o.application_id = $2 AND o.profile_id = $3
"""
_EXPIRE_SQL = """
UPDATE acme_authorizations SET status = 'expired', updated_at = $2
WHERE id = $1 AND status = 'pending' AND expires_at <= $2
"""
_LOCK_ORDER_SQL = "SELECT id FROM acme_orders WHERE id = $1 FOR UPDATE"
_DEACTIVATE_SQL = """
UPDATE acme_authorizations SET status = 'deactivated', updated_at = $2
WHERE id = $1 AND status IN ('pending', 'valid')
"""
_INVALIDATE_ORDER_SQL = """
UPDATE acme_orders SET status = 'invalid', updated_at = $2, error = $3
WHERE id = $1 AND status IN ('pending', 'ready')
"""
_START_SQL = """
UPDATE acme_challenges SET status = 'processing', updated_at = $3
WHERE id = $1 AND status = 'pending'
  AND NOT EXISTS (
      SELECT 1 FROM acme_challenges other
      WHERE other.authorization_id = $2 AND other.id <> $1 AND other.status <> 'pending'
  )
  AND EXISTS (
      SELECT 1 FROM acme_authorizations z
      WHERE z.id = $2 AND z.status = 'pending' AND z.expires_at > $3
  )
RETURNING id
"""
_ENQUEUE_SQL = insert_sql(OutboxMessage, MESSAGE_COLUMNS)


async def _authorization(
    context: ApiContext, target: AcmeTarget, signed: Signed, authz_id: UUID, now: datetime
) -> Row:
    row = await context.db.fetchrow(_AUTHZ_SQL, authz_id, target.app_id, target.profile_id)
    if row is None:
        raise not_found(f"no authorization {authz_id}")
    if row["account_id"] != signed.account_row()["id"]:
        raise unauthorized("this authorization belongs to another account")
    if row["status"] == Status.PENDING and row["expires_at"] <= now:
        await context.db.execute(_EXPIRE_SQL, authz_id, now)
        row = await context.db.fetchrow(_AUTHZ_SQL, authz_id, target.app_id, target.profile_id)
        assert row is not None
    return row


async def authorization(
    context: ApiContext,
    target: AcmeTarget,
    urls: AcmeUrls,
    signed: Signed,
    authz_id: UUID,
    now: datetime,
) -> dict[str, Any]:
    """POST-as-GET reads; `{"status": "deactivated"}` deactivates (RFC 8555 §7.5.2), which
    also invalidates its order if that was still pending or ready."""
    row = await _authorization(context, target, signed, authz_id, now)
    if not signed.post_as_get:
        payload = signed.payload()
        if payload.get("status") != Status.DEACTIVATED or len(payload) != 1:
            raise malformed('an authorization accepts only {"status": "deactivated"}')
        if row["status"] not in (Status.PENDING, Status.VALID, Status.DEACTIVATED):
            raise malformed(f"a {row['status']} authorization cannot be deactivated")
        deactivated = problem(
            ErrorType.UNAUTHORIZED, "an authorization of the order was deactivated", status=403
        )
        async with context.db.acquire() as conn, conn.transaction():
            # the order first, as the validator locks it when it records a verdict
            await conn.execute(_LOCK_ORDER_SQL, row["order_id"])
            await conn.execute(_DEACTIVATE_SQL, authz_id, now)
            await conn.execute(_INVALIDATE_ORDER_SQL, row["order_id"], now, deactivated)
        row = await _authorization(context, target, signed, authz_id, now)
    challenges = await context.db.fetch(_CHALLENGES_SQL, authz_id)
    return authorization_json(urls, row, challenges)


def authorization_json(urls: AcmeUrls, row: Row, challenges: list[Row]) -> dict[str, Any]:
    """The authorization object (RFC 8555 §7.1.4); the wildcard label is on the order only."""
    body: dict[str, Any] = {
        "identifier": {"type": row["identifier_type"], "value": row["identifier_value"]},
        "status": row["status"],
        "expires": row["expires_at"].isoformat().replace("+00:00", "Z"),
        "challenges": [challenge_json(urls, c) for c in challenges],
    }
    if row["wildcard"]:
        body["wildcard"] = True
    return body


def challenge_json(urls: AcmeUrls, row: Row) -> dict[str, Any]:
    """The challenge object (RFC 8555 §8)."""
    body: dict[str, Any] = {
        "type": row["type"],
        "url": urls.challenge(row["id"]),
        "status": row["status"],
        "token": row["token"],
    }
    if row["validated_at"] is not None:
        body["validated"] = row["validated_at"].isoformat().replace("+00:00", "Z")
    if row["error"]:
        body["error"] = row["error"]
    return body


async def challenge(
    context: ApiContext,
    target: AcmeTarget,
    urls: AcmeUrls,
    signed: Signed,
    challenge_id: UUID,
    now: datetime,
) -> tuple[dict[str, Any], UUID]:
    """`(challenge object, its authorization id)`. POST-as-GET reads; `{}` asks for
    validation (RFC 8555 §7.5.1)."""
    row = await context.db.fetchrow(_CHALLENGE_SQL, challenge_id, target.app_id, target.profile_id)
    if row is None:
        raise not_found(f"no challenge {challenge_id}")
    if row["account_id"] != signed.account_row()["id"]:
        raise unauthorized("this challenge belongs to another account")
    if not signed.post_as_get:
        signed.payload()  # a JSON object; its members are ignored (RFC 8555 §7.5.1)
        if row["status"] == Status.PENDING:
            if row["authz_status"] != Status.PENDING or row["authz_expires_at"] <= now:
                raise malformed(
                    "the authorization is no longer pending"
                    if row["authz_status"] != Status.PENDING
                    else "the authorization has expired"
                )
            await _start(context, target, row, now)
            row = await context.db.fetchrow(
                _CHALLENGE_SQL, challenge_id, target.app_id, target.profile_id
            )
            assert row is not None
    return challenge_json(urls, row), row["authorization_id"]


async def _start(context: ApiContext, target: AcmeTarget, row: Row, now: datetime) -> None:
    """pending → processing and the ValidateChallenge command, in one transaction."""
    command = ValidateChallenge(challenge_id=row["id"], application_id=target.app_id)
    message = message_row(
        context.subjects.validate_challenge, CloudEvent.wrap(command, source=SOURCE)
    )
    async with context.db.acquire() as conn, conn.transaction():
        started = await conn.fetchval(_START_SQL, row["id"], row["authorization_id"], now)
        if started is None:
            return
        await conn.execute(_ENQUEUE_SQL, *values(message, MESSAGE_COLUMNS))
    context.relay.wake()
