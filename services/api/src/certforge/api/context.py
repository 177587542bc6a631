"""Everything the API's handlers share, built once in the lifespan (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine

from certforge.api.access_cache import AccessCache
from certforge.api.domain.auth_methods import JwksCache, LoginLimiter
from certforge.api.issuer_client import IssuerClient
from certforge.api.ocsp import OcspCache
from certforge.api.outcomes import Outcomes
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
    login_limiter: LoginLimiter
    """Login attempts per identity and source, per process (see `LoginLimiter`)."""
    access: AccessCache
    """Authentication and request targets, kept until a configuration change (`access_cache`)."""
    ocsp: OcspCache = field(default_factory=OcspCache)
    successors: SuccessorWatch = field(default_factory=SuccessorWatch)
    """Wakes `…/successor` long-polls; subscribes on the first one this process serves."""
