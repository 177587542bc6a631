"""The validator's reads and writes: the challenge to check, and its verdict.

The verdict is one transaction: the challenge (`processing` → valid | invalid, attempts + 1),
its authorization (`pending` → the same), its order (`pending` → ready when every authorization
is valid, → invalid with the problem when one is not) and the `acme.challenge.validated` event
in the outbox. The challenge's UPDATE is guarded by `status = 'processing'`, so a redelivered
command, or a second validator racing the first, changes nothing and announces nothing.

The order row is locked first (`FOR UPDATE`): two authorizations of one order validated at the
same moment would otherwise each see the other still pending, and neither would make the
order ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from certforge.common.acme import Status, key_authorization
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import ChallengeValidated
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory
from certforge.common.outbox import enqueue
from certforge.validator.context import Challenge

SOURCE = "/certforge/validator"


@dataclass(frozen=True)
class Loaded:
    """A challenge with what its verdict must touch."""

    challenge_id: UUID
    status: str
    authorization_id: UUID
    order_id: UUID
    application_id: UUID
    application: str
    """The application's slug: the event's subject."""
    challenge: Challenge


_LOAD = sa.text(
    """
    SELECT ch.status, ch.type, ch.token, a.id AS authorization_id, a.identifier_type,
           a.identifier_value, a.order_id, acc.jwk_thumbprint, app.id AS application_id,
           app.slug
    FROM acme_challenges ch
    JOIN acme_authorizations a ON a.id = ch.authorization_id
    JOIN acme_accounts acc ON acc.id = a.account_id
    JOIN applications app ON app.id = acc.application_id
    WHERE ch.id = :challenge_id
    """
)

_LOCK_ORDER = sa.text("SELECT id FROM acme_orders WHERE id = :order_id FOR UPDATE")

_DECIDE_CHALLENGE = sa.text(
    """
    UPDATE acme_challenges
    SET status = :status, error = :error, validated_at = :validated_at,
        attempts = attempts + 1, updated_at = :now
    WHERE id = :challenge_id AND status = 'processing'
    RETURNING id
    """
).bindparams(sa.bindparam("error", type_=JSONB(none_as_null=True)))

_DECIDE_AUTHORIZATION = sa.text(
    """
    UPDATE acme_authorizations SET status = :status, updated_at = :now
    WHERE id = :authorization_id AND status = 'pending'
    RETURNING id
    """
)

_ORDER_READY = sa.text(
    """
    UPDATE acme_orders SET status = 'ready', updated_at = :now
    WHERE id = :order_id AND status = 'pending'
      AND NOT EXISTS (
        SELECT 1 FROM acme_authorizations WHERE order_id = :order_id AND status <> 'valid'
      )
    """
)

_ORDER_INVALID = sa.text(
    """
    UPDATE acme_orders SET status = 'invalid', error = :error, updated_at = :now
    WHERE id = :order_id AND status = 'pending'
    """
).bindparams(sa.bindparam("error", type_=JSONB(none_as_null=True)))


async def load(sessions: SessionFactory, challenge_id: UUID) -> Loaded | None:
    async with sessions() as session:
        conn = await session.connection()
        row = (await conn.execute(_LOAD, {"challenge_id": challenge_id})).mappings().first()
    if row is None:
        return None
    return Loaded(
        challenge_id=challenge_id,
        status=row["status"],
        authorization_id=row["authorization_id"],
        order_id=row["order_id"],
        application_id=row["application_id"],
        application=row["slug"],
        challenge=Challenge(
            type=row["type"],
            token=row["token"],
            identifier_type=row["identifier_type"],
            identifier=row["identifier_value"].removeprefix("*."),
            key_authorization=key_authorization(row["token"], row["jwk_thumbprint"]),
        ),
    )


async def record(
    sessions: SessionFactory,
    subjects: Subjects,
    loaded: Loaded,
    error: dict[str, Any] | None,
    now: datetime,
) -> ChallengeValidated | None:
    """Record the verdict (`error` None = valid); the event, or None when the challenge was no
    longer `processing` (already decided: nothing is changed)."""
    status = Status.VALID if error is None else Status.INVALID
    async with sessions() as session, session.begin():
        # Plain SQL on the session's connection; the outbox row joins the same transaction.
        conn = await session.connection()
        await conn.execute(_LOCK_ORDER, {"order_id": loaded.order_id})
        decided = await conn.execute(
            _DECIDE_CHALLENGE,
            {
                "status": str(status),
                "error": error,
                "validated_at": now if error is None else None,
                "now": now,
                "challenge_id": loaded.challenge_id,
            },
        )
        if decided.first() is None:
            return None
        authorized = await conn.execute(
            _DECIDE_AUTHORIZATION,
            {"status": str(status), "now": now, "authorization_id": loaded.authorization_id},
        )
        if authorized.first() is not None:
            if error is None:
                await conn.execute(_ORDER_READY, {"now": now, "order_id": loaded.order_id})
            else:
                await conn.execute(
                    _ORDER_INVALID, {"error": error, "now": now, "order_id": loaded.order_id}
                )
        event = ChallengeValidated(
            challenge_id=loaded.challenge_id,
            authorization_id=loaded.authorization_id,
            order_id=loaded.order_id,
            application_id=loaded.application_id,
            application=loaded.application,
            type=loaded.challenge.type,
            identifier=loaded.challenge.identifier,
            status=str(status),
            error=error,
        )
        enqueue(
            session,
            subjects.event(loaded.application, ChallengeValidated.event_name),
            CloudEvent.wrap(event, source=SOURCE, subject=str(loaded.challenge_id), now=now),
        )
    return event
