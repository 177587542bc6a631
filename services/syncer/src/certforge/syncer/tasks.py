"""Carrying out one sync task: push a certificate to one destination, or remove it there.

Steps: load the sync, the certificate and the lineage's state; skip a stale task (the
certificate was renewed since: it is not pushed, and when the replaced certificate is revoked
or expires nothing is removed, since the object holds the renewal) or one the destination
cannot take (it needs a key Certforge does not hold); build the item (chain per the sync's
options, key only where wanted); call the plugin within a time limit; record the outcome. A
transient failure is retried by redelivery with a growing delay until `max_attempts`, then
the state is `failed`; a permanent one fails at once. Every final outcome is an event
(`sync.succeeded` / `sync.failed`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from nats.aio.msg import Msg
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.backoff import backoff_delay
from certforge.common.ca_rollover import BundleCA, BundleCross, trust_bundle
from certforge.common.consumer import ACK, TERM, Settlement, nak
from certforge.common.contracts.commands import SyncCertificate
from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.contracts.events import SyncFailed, SyncSucceeded
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import load_stored_private_key, private_key_to_pkcs8_pem
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import (
    Application,
    CACrossCertificate,
    Certificate,
    CertificateAuthority,
    Profile,
    SyncDestination,
    SyncState,
)
from certforge.common.destinations.options import SyncOptions, render_name
from certforge.common.metrics import SYNC_RESULTS
from certforge.common.outbox import enqueue
from certforge.common.tracing import continued
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncError,
    SyncItem,
    TransientSyncError,
)
from certforge.syncer.plugins.registry import build
from certforge.syncer.settings import SyncSettings

log = logging.getLogger(__name__)

SOURCE = "/certforge/syncer"


@dataclass
class _Loaded:
    sync: SyncDestination
    certificate: Certificate
    application: Application
    profile: Profile
    ca: CertificateAuthority
    state: SyncState | None
    trust_bundle_pem: str = ""


class SyncTasks:
    def __init__(
        self,
        sessions: SessionFactory,
        leaf_keys: KeyRing,
        subjects: Subjects,
        settings: SyncSettings,
        *,
        development: bool,
        after_commit: Callable[[], None],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sessions = sessions
        self._leaf_keys = leaf_keys
        self._subjects = subjects
        self._settings = settings
        self._development = development
        self._after_commit = after_commit
        self._rand = rand
        self._destinations: dict[UUID, tuple[datetime, Destination[Any, Any]]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: set[Destination[Any, Any]] = set()
        """Replaced destinations not closed yet (tasks may still be using them)."""

    async def handle(self, messages: list[Msg]) -> list[Settlement]:
        """All tasks of a batch at once: destinations are independent."""
        return list(await asyncio.gather(*(self._one(m) for m in messages)))

    async def _one(self, msg: Msg) -> Settlement:
        with continued("sync certificate", msg.headers):
            return await self._carry_out(msg)

    async def _carry_out(self, msg: Msg) -> Settlement:
        try:
            task = SyncCertificate.model_validate(orjson.loads(msg.data)["data"])
        except (ValueError, KeyError, TypeError):
            log.error("terminating an undecodable sync task")
            return TERM
        attempt = msg.metadata.num_delivered or 1
        loaded = await self._load(task)
        if loaded is None:
            return ACK  # the sync or the certificate was deleted meanwhile
        stale = loaded.certificate.renewed_by_id is not None or (
            task.action == "push" and loaded.certificate.status == "revoked"
        )
        if stale:
            # Superseded by its renewal (a push: the renewal's own task pushes that one; a
            # removal of the replaced certificate: the object holds the renewal now, keep it),
            # or revoked before its push ran (never push it: the revocation's own removal task
            # takes care of the lineage). But a redelivered push may have written to the
            # destination in an earlier delivery that died before recording it (the syncer
            # killed, the database failing over), after the task that it now lags behind:
            # queue the lineage's current state again (pushing or removing twice is no error).
            if task.action == "push" and attempt > 1:
                await self._catch_up(loaded, task)
            return ACK
        if not loaded.sync.enabled:
            await self._record(loaded, task, "skipped", error="the sync is disabled")
            return ACK
        try:
            destination = self.destination(loaded.sync)
        except SyncError as exc:
            return await self._failed(loaded, task, str(exc), attempt)
        if (
            task.action == "push"
            and destination.needs_private_key
            and loaded.certificate.encrypted_private_key is None
        ):
            reason = (
                f"{loaded.sync.kind} needs the private key, and this certificate was issued "
                "from a CSR: its key never left the client"
            )
            await self._record(loaded, task, "skipped", error=reason)
            return ACK
        item = self._item(loaded, destination)
        try:
            external_id = await asyncio.wait_for(
                self._call(destination, task, item),
                timeout=self._settings.operation_timeout_seconds,
            )
        except PermanentSyncError as exc:
            return await self._failed(loaded, task, str(exc), attempt)
        except (TransientSyncError, TimeoutError) as exc:
            message = str(exc) or "the destination did not answer in time"
            if attempt >= self._settings.max_attempts:
                return await self._failed(loaded, task, message, attempt)
            await self._record(loaded, task, "pending", error=message, attempts=attempt)
            SYNC_RESULTS.labels(loaded.sync.kind, "retried").inc()
            return nak(self._retry_delay(attempt))
        except Exception:
            log.exception("sync %s: unexpected failure", loaded.sync.id)
            if attempt >= self._settings.max_attempts:
                return await self._failed(loaded, task, "internal error in the syncer", attempt)
            return nak(self._retry_delay(attempt))
        status = "succeeded" if task.action == "push" else "removed"
        await self._record(
            loaded, task, status, external_id=external_id, attempts=attempt, event=True
        )
        SYNC_RESULTS.labels(loaded.sync.kind, status).inc()
        return ACK

    def _retry_delay(self, attempt: int) -> float:
        return retry_delay(attempt, self._settings.max_backoff_seconds, self._rand)

    def destination(self, sync: SyncDestination) -> Destination[Any, Any]:
        """The plugin instance of a sync, rebuilt when the sync changed."""
        cached = self._destinations.get(sync.id)
        if cached is not None and cached[0] == sync.updated_at:
            return cached[1]
        credentials = None
        if sync.encrypted_credentials is not None:
            credentials = orjson.loads(
                self._leaf_keys.decrypt(sync.encrypted_credentials, sync.id.bytes)
            )
        try:
            destination = build(
                sync.kind, sync.settings, credentials, development=self._development
            )
        except ValueError as exc:  # a client refusing what the models let through
            raise PermanentSyncError(f"invalid {sync.kind} configuration: {exc}") from exc
        if cached is not None:
            self._retire(cached[1])
        self._destinations[sync.id] = (sync.updated_at, destination)
        return destination

    async def close(self) -> None:
        """Close every destination (at shutdown, once no task runs): clients, sessions and
        the files some keep (a Vault destination's CA bundle) are released."""
        for task in list(self._retiring):
            task.cancel()  # no task uses a retired destination now: close it at once, below
        destinations = [d for _, d in self._destinations.values()] + list(self._retired)
        self._destinations.clear()
        self._retired.clear()
        for destination in destinations:
            try:
                await destination.close()
            except Exception:
                log.warning("closing a %s destination failed", destination.kind)

    def _retire(self, destination: Destination[Any, Any]) -> None:
        """Close a replaced destination once tasks still using it are past their time limit."""

        async def close_later() -> None:
            await asyncio.sleep(self._settings.operation_timeout_seconds)
            self._retired.discard(destination)
            try:
                await destination.close()
            except Exception:
                log.warning("closing a replaced %s destination failed", destination.kind)

        self._retired.add(destination)
        task = asyncio.create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _call(
        self, destination: Destination[Any, Any], task: SyncCertificate, item: SyncItem
    ) -> str | None:
        if task.action == "push":
            return await destination.push(item)
        if item.external_id is None:
            return None  # never pushed there: nothing to remove
        await destination.remove(item, item.external_id)
        return item.external_id

    async def _load(self, task: SyncCertificate) -> _Loaded | None:
        async with self._sessions() as session:
            sync = await session.get(SyncDestination, task.sync_id)
            certificate = await session.get(Certificate, task.certificate_id)
            if sync is None or certificate is None:
                return None
            application = await session.get(Application, certificate.application_id)
            profile = await session.get(Profile, certificate.profile_id)
            ca = await session.get(CertificateAuthority, certificate.ca_id)
            state = await session.get(SyncState, (sync.id, task.lineage_id))
            assert application is not None
            assert profile is not None
            assert ca is not None
            bundle = ""
            if SyncOptions.model_validate(sync.options).include_trust_bundle:
                bundle = await _trust_bundle(session, ca.id)
            return _Loaded(sync, certificate, application, profile, ca, state, bundle)

    def _item(self, loaded: _Loaded, destination: Destination[Any, Any]) -> SyncItem:
        options = SyncOptions.model_validate(loaded.sync.options)
        certificate = loaded.certificate
        private_key = None
        if certificate.encrypted_private_key is not None and destination.wants_private_key():
            der = self._leaf_keys.decrypt(certificate.encrypted_private_key, certificate.id.bytes)
            private_key = private_key_to_pkcs8_pem(load_stored_private_key(der))
        lineage_id = certificate.lineage_id or certificate.id
        return SyncItem(
            name=render_name(
                options.name_template,
                lineage_id=lineage_id,
                common_name=certificate.common_name,
                profile=loaded.profile.slug,
                application=loaded.application.slug,
            ),
            lineage_id=lineage_id,
            certificate_id=certificate.id,
            application=loaded.application.slug,
            profile=loaded.profile.slug,
            common_name=certificate.common_name,
            serial_number=certificate.serial_number,
            not_after=certificate.not_after,
            certificate_pem=certificate.certificate_pem,
            chain_pem=_chain(loaded.ca, options),
            private_key_pem=private_key,
            metadata=dict(certificate.tags),
            external_id=loaded.state.external_id if loaded.state else None,
            trust_bundle_pem=loaded.trust_bundle_pem,
        )

    async def _failed(
        self, loaded: _Loaded, task: SyncCertificate, error: str, attempt: int
    ) -> Settlement:
        await self._record(loaded, task, "failed", error=error, attempts=attempt, event=True)
        SYNC_RESULTS.labels(loaded.sync.kind, "failed").inc()
        return ACK

    async def _record(
        self,
        loaded: _Loaded,
        task: SyncCertificate,
        status: str,
        *,
        error: str | None = None,
        external_id: str | None = None,
        attempts: int = 0,
        event: bool = False,
    ) -> None:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "sync_id": loaded.sync.id,
            "lineage_id": task.lineage_id,
            "certificate_id": task.certificate_id,
            "status": status,
            "action": task.action,
            "attempts": attempts,
            "last_error": error[:2000] if error else None,
            "updated_at": now,
        }
        if status in ("succeeded", "removed"):
            values["last_synced_at"] = now
            values["external_id"] = external_id
        async with self._sessions() as session, session.begin():
            statement = insert(SyncState).values(**values)
            await session.exec(
                statement.on_conflict_do_update(
                    index_elements=["sync_id", "lineage_id"],
                    set_={
                        k: statement.excluded[k]
                        for k in values
                        if k not in ("sync_id", "lineage_id")
                    },
                    # A removal that found nothing to remove must not erase what a push running
                    # beside it recorded meanwhile: that push queues the removal again.
                    where=_removed_nothing_after_a_push()
                    if status == "removed" and external_id is None
                    else None,
                )
            )
            if event:
                self._announce(session, loaded, task, status, error, external_id, attempts)
            if status == "succeeded" and await self._revoked_meanwhile(session, loaded, task):
                enqueue(session, self._subjects.sync_task, _removal(task))
        if event:
            self._after_commit()

    async def _catch_up(self, loaded: _Loaded, task: SyncCertificate) -> None:
        """Queue the task for the lineage's newest certificate: push it if it is active,
        remove it if it is revoked and the sync removes revoked ones."""
        async with self._sessions() as session, session.begin():
            newest = (
                await session.exec(
                    select(Certificate).where(
                        Certificate.lineage_id == task.lineage_id,
                        col(Certificate.renewed_by_id).is_(None),
                    )
                )
            ).first()
            if newest is None:
                return
            remove = SyncOptions.model_validate(loaded.sync.options).remove_on_revoke
            if newest.status == "active":
                update = {"certificate_id": newest.id, "reason": "run"}
            elif newest.status == "revoked" and remove:
                update = {"certificate_id": newest.id, "action": "remove", "reason": "revoked"}
            else:
                return
            again: MessageData = task.model_copy(update=update)
            enqueue(session, self._subjects.sync_task, CloudEvent.wrap(again, source=SOURCE))
        self._after_commit()

    async def _revoked_meanwhile(
        self, session: AsyncSession, loaded: _Loaded, task: SyncCertificate
    ) -> bool:
        """Whether the certificate just pushed was revoked while the push ran, so that its
        removal (which found nothing recorded yet to remove) must run again now. FOR SHARE: a
        revocation committing after this check waits for this transaction, so its own removal
        task then sees the external id recorded here."""
        status = await session.scalar(
            select(Certificate.status)
            .where(Certificate.id == task.certificate_id)
            .with_for_update(read=True)
        )
        options = SyncOptions.model_validate(loaded.sync.options)
        return bool(status == "revoked" and options.remove_on_revoke)

    def _announce(
        self,
        session: AsyncSession,
        loaded: _Loaded,
        task: SyncCertificate,
        status: str,
        error: str | None,
        external_id: str | None,
        attempts: int,
    ) -> None:
        common = {
            "sync_id": loaded.sync.id,
            "sync": loaded.sync.name,
            "kind": loaded.sync.kind,
            "application_id": loaded.application.id,
            "application": loaded.application.slug,
            "certificate_id": task.certificate_id,
            "lineage_id": task.lineage_id,
            "action": task.action,
        }
        event: SyncSucceeded | SyncFailed = (
            SyncFailed(**common, error=error or "", attempts=attempts)
            if status == "failed"
            else SyncSucceeded(**common, external_id=external_id)
        )
        subject = self._subjects.event(loaded.application.slug, event.event_name)
        enqueue(session, subject, CloudEvent.wrap(event, source=SOURCE, subject=str(task.sync_id)))


def _removed_nothing_after_a_push() -> Any:
    return col(SyncState.external_id).is_(None)


def _removal(push: SyncCertificate) -> CloudEvent[MessageData]:
    task: MessageData = push.model_copy(update={"action": "remove", "reason": "revoked"})
    return CloudEvent.wrap(task, source=SOURCE)


def retry_delay(attempt: int, cap: float, rand: Callable[[], float]) -> float:
    """Seconds before delivery `attempt + 1` of a task: 2 s, 4 s, 8 s… up to `cap`, each drawn
    from its upper half (`backoff_delay`), so replicas whose pushes failed together (a
    destination down) do not all retry it at the same instant."""
    return backoff_delay(attempt, base=2.0, cap=cap, rand=rand)


async def _trust_bundle(session: AsyncSession, ca_id: UUID) -> str:
    """The CA's trust bundle, as `GET /cas/{id}/bundle` serves it (`common.ca_rollover`)."""
    cas = {ca.id: BundleCA.of(ca) for ca in await session.exec(select(CertificateAuthority))}
    crosses = [BundleCross.of(c) for c in await session.exec(select(CACrossCertificate))]
    return "".join(trust_bundle(ca_id, cas, crosses, datetime.now(UTC)))


def _chain(ca: CertificateAuthority, options: SyncOptions) -> str:
    """The issuing CA and its issuers, the root only when asked for."""
    if not options.include_chain:
        return ""
    chain = x509.load_pem_x509_certificates((ca.certificate_pem + ca.chain_pem).encode())
    if not options.include_root:
        chain = [c for c in chain if c.issuer != c.subject]
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in chain)
