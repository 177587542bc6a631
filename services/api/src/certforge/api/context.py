"""Everything the API's handlers share, built once in the lifespan (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine

from certforge.api.access_cache import AccessCache
from certforge.api.domain.auth_methods import JwksCache
from certforge.api.domain.ocsp import OcspDeps
from certforge.api.issuer_client import IssuerClient
from certforge.api.outcomes import Outcomes
from certforge.api.revocation_memory import CrlMemory
from certforge.api.settings import ApiSettings
from certforge.api.successor_watch import SuccessorWatch
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.engine import SessionFactory
from certforge.common.db.pool import Database
from certforge.common.outbox import OutboxRelay


@dataclass
class ApiContext:
    settings: ApiSettings
    engine: AsyncEngine
    sessions: SessionFactory
    db: Database
    """Plain asyncpg for the hot paths (authentication, issuance); the ORM elsewhere."""
    nats: NatsClient
    relay: OutboxRelay
    subjects: Subjects
    leaf_keys: KeyRing
    issuer: IssuerClient
    outcomes: Outcomes
    login_keys: JwksCache
    """Trusted issuers' key sets for JWT login, cached per process."""
    access: AccessCache
    """Authentication and request targets, kept until a configuration change (`access_cache`)."""
    ocsp: OcspDeps
    """Pre-signed OCSP answers in memory, and the other replicas told to forget them."""
    crls: CrlMemory = field(default_factory=CrlMemory)
    """The newest CRL of each CA, as served, re-checked against the database now and then."""
    successors: SuccessorWatch = field(default_factory=SuccessorWatch)
    """Wakes `…/successor` long-polls; subscribes on the first one this process serves."""
