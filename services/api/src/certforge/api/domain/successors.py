"""Whether a certificate's lineage has a newer certificate than the caller's, waiting for one.

A lineage is a certificate and its renewals (`lineage_id`, the first one's id); renewing a
certificate that was already renewed is refused, so a lineage is a line, and its newest member
is the one no certificate renewed (`renewed_by_id` is null: the issuer sets it on the old one
in the transaction that stores the new one). Not "the one created last": `created_at` has
whole seconds, and a renewal often lands in the same second as its predecessor.

The caller names the certificate it holds; the answer is the newest of its lineage when that
is another one, else nothing, at once or after waiting up to `wait` seconds for the issuer's
`certificate.renewed` event (`successor_watch`).

Each read opens its own short session and closes it before any wait: a thousand agents
long-polling hold a thousand waiters, not a thousand database connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from uuid import UUID

from sqlmodel import col, select

from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain import certificates
from certforge.api.successor_watch import SuccessorWatch
from certforge.common.db.tables import Application, Certificate, Profile

MAX_WAIT_SECONDS = 60
"""Like `Prefer: wait`: long enough to save most polls, short enough for proxies' idle
timeouts (commonly 60 s or more) to let the answer through."""


@dataclass(frozen=True, slots=True)
class Newest:
    certificate: Certificate
    application: Application
    profile: Profile


async def newest(
    context: ApiContext, actor: Actor, app_ref: str, certificate_id: UUID
) -> Newest | None:
    """The newest certificate of the lineage of `certificate_id` when it is not that one.

    Readable by every role of the application, like the certificate itself; another
    application's certificate is a 404, as if it did not exist."""
    async with context.sessions() as session:
        mine, application, _ = await certificates.get(session, actor, app_ref, certificate_id)
        lineage = mine.lineage_id or mine.id
        row = (
            await session.exec(
                select(Certificate, Profile)
                .join(Profile, col(Profile.id) == col(Certificate.profile_id))
                .where(
                    Certificate.lineage_id == lineage,
                    Certificate.application_id == application.id,
                    col(Certificate.renewed_by_id).is_(None),
                )
                .order_by(col(Certificate.created_at).desc(), col(Certificate.not_before).desc())
                .limit(1)
            )
        ).first()
    if row is None or row[0].id == mine.id:
        return None
    return Newest(row[0], application, row[1])


async def wait_for_newer(
    context: ApiContext,
    watch: SuccessorWatch,
    actor: Actor,
    app_ref: str,
    certificate_id: UUID,
    wait: float,
) -> Newest | None:
    """`newest`, waiting up to `wait` seconds for a renewal when there is none yet.

    The waiter is registered before the first read: a renewal committed after the read is
    announced after it, and so wakes this caller. Woken or not, the lineage is read again, so
    an event missed during a NATS reconnect costs one wait, not a wrong answer."""
    if wait <= 0:
        return await newest(context, actor, app_ref, certificate_id)
    await watch.ensure_started(context.nats, context.subjects)
    future = watch.expect(certificate_id)
    try:
        found = await newest(context, actor, app_ref, certificate_id)
        if found is not None:
            return found
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout=wait)
    finally:
        watch.forget(certificate_id, future)
    return await newest(context, actor, app_ref, certificate_id)
