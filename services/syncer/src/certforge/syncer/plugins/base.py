"""The one small interface every sync destination implements, and what it is given.

A plugin names its kind's `DestinationSpec` (`certforge.common.destinations`: the settings and
credentials models and the rules on them, pure, so the api validates a sync without importing
any SDK) and keeps only the SDK calls. Credentials arrive decrypted only inside the syncer,
never in a response, log or event.

Blocking SDKs run through `run_blocking` (a thread, within the plugin's deadline), and what a
peer says is passed through `peer_message` (one length), so every plugin bounds time and
message size the same way.

    SyncError                    the destination refused or failed
    ├── TransientSyncError       retried with backoff (timeouts, 5xx, throttling, unreachable)
    └── PermanentSyncError       fails at once (credentials refused, invalid settings, 4xx)

`push` creates or replaces the object for a certificate lineage and returns its external id
(ARN, secret name, path…); called again with the returned id (`item.external_id`) after a
renewal, it must replace that same object in place. `remove` deletes it (idempotent: a missing
object is not an error). `check` verifies credentials and reachability without writing.
"""

from __future__ import annotations

import asyncio
import contextvars
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

from certforge.common.destinations.spec import DestinationSpec


class SyncError(Exception):
    """A destination failed; the message is shown to users (it must hold no secret)."""


class TransientSyncError(SyncError):
    pass


class PermanentSyncError(SyncError):
    pass


MAX_PEER_MESSAGE = 400
"""Characters of a peer's own words (an error body, a reason) kept in a user-facing message."""


def peer_message(text: object) -> str:
    """A peer's message on one line, cut to `MAX_PEER_MESSAGE` characters."""
    message = " ".join(str(text).split())
    if len(message) <= MAX_PEER_MESSAGE:
        return message
    return message[: MAX_PEER_MESSAGE - 1] + "…"


@dataclass(frozen=True)
class SyncItem:
    """One certificate to push to (or remove from) one destination."""

    name: str
    """The object name, rendered from the sync's name template."""
    lineage_id: UUID
    """Stable across renewals: the id of the first certificate of the renewal chain."""
    certificate_id: UUID
    application: str
    profile: str
    common_name: str | None
    serial_number: str
    not_after: datetime
    certificate_pem: str
    chain_pem: str
    """Issuing CA first; includes the root only when the sync's `include_root` is set; empty
    when `include_chain` is off."""
    private_key_pem: str | None
    """PKCS#8 PEM; None for CSR certificates and for destinations that do not take keys."""
    metadata: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None
    """What `push` returned last time for this lineage (replace in place), if anything."""
    trust_bundle_pem: str = ""
    """The issuing CA's trust bundle (roots, old and new during a rollover) when the sync's
    `include_trust_bundle` is set, else empty."""

    @property
    def fullchain_pem(self) -> str:
        return self.certificate_pem + self.chain_pem


SettingsT = TypeVar("SettingsT", bound=BaseModel)
CredentialsT = TypeVar("CredentialsT", bound=BaseModel)
T = TypeVar("T")


class Destination(ABC, Generic[SettingsT, CredentialsT]):
    """A kind of external store. Instances are built per sync from its validated settings."""

    spec: ClassVar[DestinationSpec]
    """The kind, its settings and credentials models and their rules (in common)."""
    kind: ClassVar[str]
    """The `kind` of a sync (`aws-acm`, `directory`, …), taken from `spec`."""
    label: ClassVar[str]
    """How messages name the destination (`AWS ACM`, `Vault`)."""
    needs_private_key: ClassVar[bool] = True
    """Whether the destination can only hold a certificate together with its key: a CSR
    certificate (no key held by Certforge) is then `skipped`."""
    executor: ClassVar[Executor | None] = None
    """Where `run_blocking` runs calls; None: the event loop's default thread pool."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            cls.kind = spec.kind

    def __init__(
        self, settings: SettingsT, credentials: CredentialsT, *, development: bool
    ) -> None:
        self.validate_for(settings, credentials, development=development)
        self.settings = settings
        self.credentials = credentials
        self.development = development

    @classmethod
    def validate_for(
        cls, settings: SettingsT, credentials: CredentialsT, *, development: bool
    ) -> None:
        """The kind's deployment rules (https outside development…), as a permanent failure
        naming each field (`url: https is required outside development mode`)."""
        errors = cls.spec.rules(settings, credentials, development)
        if errors:
            raise PermanentSyncError(
                "; ".join(f"{e.field.rsplit('.', 1)[-1]}: {e.message}" for e in errors)
            )

    @abstractmethod
    async def push(self, item: SyncItem) -> str:
        """Create or replace the object; return its external id."""

    @abstractmethod
    async def remove(self, item: SyncItem, external_id: str) -> None:
        """Delete the object; a missing object is not an error."""

    @abstractmethod
    async def check(self) -> None:
        """Verify credentials and reachability without writing; raise SyncError if not."""

    def uses_ambient_credentials(self) -> bool:
        """Whether the destination acts with the syncer's own identity (AWS default chain,
        in-cluster service account, managed identity) rather than credentials of the sync."""
        return self.spec.uses_ambient_credentials(self.settings, self.credentials)

    def wants_private_key(self) -> bool:
        """Whether the key is sent at all (a webhook sends one only when explicitly enabled)."""
        return True

    def call_deadline(self) -> float | None:
        """Seconds one blocking call may take in all, whatever its SDK's own timeouts (a peer
        trickling bytes forever defeats read timeouts); None: no deadline of its own."""
        return None

    async def run_blocking(
        self, fn: Callable[[], T], *, action: str, deadline: float | None = None
    ) -> T:
        """`fn()` in a thread (with the caller's context variables), off the event loop.

        Past `deadline` (default: `call_deadline()`) it is a transient failure; the thread
        is left to end on its own, since a thread cannot be cancelled."""
        budget = deadline if deadline is not None else self.call_deadline()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, contextvars.copy_context().run, fn)
        if budget is None:
            return await future
        try:
            return await asyncio.wait_for(future, timeout=budget)
        except TimeoutError:
            raise TransientSyncError(
                f"{self.label}: {action} did not finish within {budget:.0f} s; will retry"
            ) from None

    async def close(self) -> None:
        """Release clients (connections) the plugin opened."""
