"""A bounded pool of pre-generated managed keys, for key types slow to generate (RSA).

An RSA-2048 key takes tens of milliseconds of CPU, an RSA-4096 one seconds: generated on the
request's path, it dominates the latency. The pool keeps `size` keys per configured algorithm,
encrypted at rest like every key (leaf key ring, AAD = the entry's id), refilled by a background
loop one key at a time on a worker thread. Issuance claims keys with
`DELETE … RETURNING … FOR UPDATE SKIP LOCKED` inside the transaction that stores the
certificates: a key is handed out once, or stays in the pool when that transaction rolls back.
An empty pool is no error: the issuer generates the key itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING
from uuid import uuid4

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlmodel import select

from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import (
    PrivateKey,
    generate_private_key,
    load_stored_private_key,
    private_key_to_der,
)
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import PooledKey
from certforge.common.domain import KeyAlgorithm

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

log = logging.getLogger(__name__)


class KeyPoolSettings(BaseModel):
    """Pre-generated keys (`CERTFORGE_KEY_POOL__…`)."""

    algorithms: list[KeyAlgorithm] = Field(
        default_factory=lambda: [KeyAlgorithm.RSA_2048],
        description="key types kept ready (EC and Ed25519 keys are cheap to generate on demand)",
    )
    size: int = Field(default=32, ge=0, le=10_000, description="keys kept per type; 0 = off")
    poll_seconds: float = Field(default=5, gt=0, description="refill check period")


_CLAIM_SQL = """
DELETE FROM key_pool WHERE id IN (
    SELECT id FROM key_pool WHERE key_algorithm = $1
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id, encrypted_key
"""
"""The oldest keys of a type, removed; keys another transaction holds are skipped."""


class KeyPool:
    def __init__(self, sessions: SessionFactory, leaf_keys: KeyRing, settings: KeyPoolSettings):
        self._sessions = sessions
        self._leaf_keys = leaf_keys
        self._settings = settings
        self._claimed = asyncio.Event()

    def pooled(self, algorithm: KeyAlgorithm) -> bool:
        return self._settings.size > 0 and algorithm in self._settings.algorithms

    async def claim(
        self, conn: Connection, algorithm: KeyAlgorithm, count: int
    ) -> list[PrivateKey]:
        """Up to `count` keys, removed from the pool within the transaction open on `conn`."""
        if count <= 0 or not self.pooled(algorithm):
            return []
        rows = await conn.fetch(_CLAIM_SQL, algorithm.value, count)
        self._claimed.set()
        return [
            load_stored_private_key(self._leaf_keys.decrypt(row["encrypted_key"], row["id"].bytes))
            for row in rows
        ]

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.refill(stopping)
            except Exception:
                log.exception("refilling the key pool failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claimed.wait(), timeout=self._settings.poll_seconds)
            self._claimed.clear()

    async def refill(self, stopping: asyncio.Event | None = None) -> int:
        """Top every configured type up to `size`; return how many keys were added."""
        added = 0
        for algorithm in self._settings.algorithms:
            async with self._sessions() as session:
                have = (
                    await session.exec(
                        select(sa.func.count())
                        .select_from(PooledKey)
                        .where(PooledKey.key_algorithm == algorithm.value)
                    )
                ).one()
            for _ in range(self._settings.size - int(have)):
                if stopping is not None and stopping.is_set():
                    return added
                key = await asyncio.to_thread(generate_private_key, algorithm)
                entry_id = uuid4()
                async with self._sessions() as session, session.begin():
                    session.add(
                        PooledKey(
                            id=entry_id,
                            key_algorithm=algorithm.value,
                            encrypted_key=self._leaf_keys.encrypt(
                                private_key_to_der(key), entry_id.bytes
                            ),
                            key_kek_id=self._leaf_keys.active_kid,
                        )
                    )
                added += 1
        return added
