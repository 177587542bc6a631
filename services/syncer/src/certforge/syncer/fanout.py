"""From certificate events to sync tasks: one task per matching destination.

A certificate event (issued, renewed, revoked, expired) is matched against the application's
enabled syncs; each match becomes a `SyncCertificate` task on the sync stream, written through
the outbox in one transaction per batch of events. Fanning out first means each destination is
retried on its own: a broken destination never delays or repeats pushes to the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson
from nats.aio.msg import Msg
from sqlmodel import col, select

from certforge.common.consumer import ACK, TERM, Settlement
from certforge.common.contracts.commands import SyncCertificate
from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.contracts.events import (
    CertificateExpired,
    CertificateIssued,
    CertificateRenewed,
    CertificateRevoked,
)
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import Certificate, SyncDestination
from certforge.common.destinations.options import SyncOptions, SyncSelector
from certforge.common.outbox import enqueue_many

log = logging.getLogger(__name__)

SOURCE = "/certforge/syncer"
_PUSH = {CertificateIssued.event_type: "issued", CertificateRenewed.event_type: "renewed"}
_REMOVE = {CertificateRevoked.event_type: "revoked", CertificateExpired.event_type: "expired"}


class FanOut:
    def __init__(
        self, sessions: SessionFactory, subjects: Subjects, after_commit: Callable[[], None]
    ) -> None:
        self._sessions = sessions
        self._subjects = subjects
        self._after_commit = after_commit

    async def handle(self, messages: list[Msg]) -> list[Settlement]:
        settlements: list[Settlement] = []
        wanted: list[tuple[str, UUID, str | None]] = []
        applications: set[UUID] = set()
        for msg in messages:
            try:
                envelope: dict[str, Any] = orjson.loads(msg.data)
                event_type = envelope["type"]
                certificate_id = UUID(envelope["data"]["certificate_id"])
                application_id = UUID(envelope["data"]["application_id"])
            except (ValueError, KeyError, TypeError):
                log.error("ignoring an undecodable event on %s", msg.subject)
                settlements.append(TERM)
                continue
            settlements.append(ACK)
            if event_type in _PUSH or event_type in _REMOVE:
                traceparent = (msg.headers or {}).get("traceparent")
                wanted.append((event_type, certificate_id, traceparent))
                applications.add(application_id)
        if wanted:
            await self._fan_out(wanted, applications)
        return settlements

    async def _fan_out(
        self, wanted: list[tuple[str, UUID, str | None]], applications: set[UUID]
    ) -> None:
        """Tasks carry the trace of the event that caused them. The syncs are looked up first:
        most certificates belong to applications without any, and then nothing else is read."""
        async with self._sessions() as session, session.begin():
            syncs = list(
                await session.exec(
                    select(SyncDestination).where(
                        col(SyncDestination.application_id).in_(applications),
                        col(SyncDestination.enabled),
                    )
                )
            )
            if not syncs:
                return
            ids = {certificate_id for _, certificate_id, _ in wanted}
            certificates = {
                c.id: c
                for c in await session.exec(select(Certificate).where(col(Certificate.id).in_(ids)))
            }
            tasks: list[tuple[str, CloudEvent[MessageData]]] = []
            for event_type, certificate_id, traceparent in wanted:
                certificate = certificates.get(certificate_id)
                if certificate is None:
                    continue
                for sync in syncs:
                    action = _action(event_type, certificate, sync)
                    if action is None:
                        continue
                    task = SyncCertificate(
                        sync_id=sync.id,
                        lineage_id=certificate.lineage_id or certificate.id,
                        certificate_id=certificate.id,
                        application_id=certificate.application_id,
                        action=action,
                        reason=_PUSH.get(event_type) or _REMOVE[event_type],
                    )
                    tasks.append(
                        (
                            self._subjects.sync_task,
                            CloudEvent.wrap(task, source=SOURCE, traceparent=traceparent),
                        )
                    )
            await enqueue_many(session, tasks)
        if tasks:
            self._after_commit()


def _action(event_type: str, certificate: Certificate, sync: SyncDestination) -> str | None:
    if sync.application_id != certificate.application_id:
        return None
    if not SyncSelector.model_validate(sync.selector).matches(
        certificate.profile_id, certificate.tags
    ):
        return None
    if event_type in _PUSH:
        return "push"
    options = SyncOptions.model_validate(sync.options)
    if event_type == CertificateRevoked.event_type and options.remove_on_revoke:
        return "remove"
    if event_type == CertificateExpired.event_type and options.remove_on_expiry:
        return "remove"
    return None
