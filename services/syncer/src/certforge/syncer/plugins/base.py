"""The one small interface every sync destination implements, and what it is given.

A plugin declares its settings (and credentials, when it needs any) as pydantic models; both
are validated when a sync is created, so a sync that exists is configured well enough to try.
Credentials arrive decrypted only inside the syncer, never in a response, log or event.

    SyncError                    the destination refused or failed
    ├── TransientSyncError       retried with backoff (timeouts, 5xx, throttling, unreachable)
    └── PermanentSyncError       fails at once (credentials refused, invalid settings, 4xx)

`push` creates or replaces the object for a certificate lineage and returns its external id
(ARN, secret name, path…); called again with the returned id (`item.external_id`) after a
renewal, it must replace that same object in place. `remove` deletes it (idempotent: a missing
object is not an error). `check` verifies credentials and reachability without writing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

from cryptography import x509
from pydantic import BaseModel, ConfigDict


class SyncError(Exception):
    """A destination failed; the message is shown to users (it must hold no secret)."""


class TransientSyncError(SyncError):
    pass


class PermanentSyncError(SyncError):
    pass


def check_ca_pem(value: str | None) -> str | None:
    """Settings validator for a trust anchor given as PEM (`ca_pem` of several plugins)."""
    if value is None:
        return None
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError as exc:
        raise ValueError("ca_pem must hold one or more PEM certificates") from exc
    if not certificates:
        raise ValueError("ca_pem must hold one or more PEM certificates")
    return value


class NoCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")


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

    @property
    def fullchain_pem(self) -> str:
        return self.certificate_pem + self.chain_pem


SettingsT = TypeVar("SettingsT", bound=BaseModel)
CredentialsT = TypeVar("CredentialsT", bound=BaseModel)


class Destination(ABC, Generic[SettingsT, CredentialsT]):
    """A kind of external store. Instances are built per sync from its validated settings."""

    kind: ClassVar[str]
    """The `kind` of a sync (`aws-acm`, `directory`, …)."""
    settings_model: ClassVar[type[BaseModel]]
    credentials_model: ClassVar[type[BaseModel]] = NoCredentials
    needs_private_key: ClassVar[bool] = True
    """Whether the destination can only hold a certificate together with its key: a CSR
    certificate (no key held by Certforge) is then `skipped`."""

    def __init__(
        self, settings: SettingsT, credentials: CredentialsT, *, development: bool
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.development = development

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
        in-cluster service account, managed identity) rather than credentials of the sync:
        the api allows that only where the operator enabled it."""
        return False

    def wants_private_key(self) -> bool:
        """Whether the key is sent at all (a webhook sends one only when explicitly enabled)."""
        return True

    async def close(self) -> None:
        """Release clients (connections) the plugin opened."""
