"""A bounded pool of pre-generated managed keys, for key types slow to generate (RSA).

An RSA-2048 key takes tens of milliseconds of CPU, an RSA-4096 one seconds: generated on the
request's path, it dominates the latency. The pool keeps `size` keys per configured algorithm,
encrypted at rest like every key (leaf key ring, AAD = the entry's id), refilled by a background
loop whose keys are generated in separate processes (`keygen`), so that a refill never takes
the issuer's event loop or its GIL away from signing. Issuance claims keys with
`DELETE … RETURNING … FOR UPDATE SKIP LOCKED` inside the transaction that stores the
certificates: a key is handed out once, or stays in the pool when that transaction rolls back.
An empty pool is no error: the issuer generates the key itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING
from uuid import uuid4

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlmodel import select

from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import PrivateKey, load_stored_private_key
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import PooledKey
from certforge.common.domain import KeyAlgorithm
from certforge.issuer.keygen import exit_with_parent, generate_key_der

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
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="processes generating the pool's keys, apart from the issuer's event loop",
    )


_CLAIM_SQL = """
DELETE FROM key_pool WHERE id IN (
    SELECT id FROM key_pool WHERE key_algorithm = $1
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id, encrypted_key
"""
"""The oldest keys of a type, removed; keys another transaction holds are skipped."""


class KeyPool:
    def __init__(
        self,
        sessions: SessionFactory,
        leaf_keys: KeyRing,
        settings: KeyPoolSettings,
        generate: Callable[[KeyAlgorithm], bytes] = generate_key_der,
    ):
        """`generate` runs in the key processes: a module-level function (it is pickled)."""
        self._sessions = sessions
        self._leaf_keys = leaf_keys
        self._settings = settings
        self._generate = generate
        self._claimed = asyncio.Event()
        self._executor: ProcessPoolExecutor | None = None

    def _processes(self) -> ProcessPoolExecutor:
        """Started on the first refill. `spawn`, not `fork`: a fork of a process running an
        event loop, NATS and database connections would inherit their threads' locks."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._settings.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._executor

    def close(self) -> None:
        """Stop the key processes (a generation under way is abandoned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

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
        try:
            while not stopping.is_set():
                try:
                    await self.refill(stopping)
                except Exception:
                    log.exception("refilling the key pool failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._claimed.wait(), timeout=self._settings.poll_seconds
                    )
                self._claimed.clear()
        finally:
            self.close()

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
            missing = self._settings.size - int(have)
            while missing > 0:
                if stopping is not None and stopping.is_set():
                    return added
                # as many at once as there are key processes; stored as they come
                wave = min(missing, self._settings.processes)
                loop = asyncio.get_running_loop()
                ders = await asyncio.gather(
                    *(
                        loop.run_in_executor(self._processes(), self._generate, algorithm)
                        for _ in range(wave)
                    )
                )
                async with self._sessions() as session, session.begin():
                    for der in ders:
                        entry_id = uuid4()
                        session.add(
                            PooledKey(
                                id=entry_id,
                                key_algorithm=algorithm.value,
                                encrypted_key=self._leaf_keys.encrypt(der, entry_id.bytes),
                                key_kek_id=self._leaf_keys.active_kid,
                            )
                        )
                added += wave
                missing -= wave
        return added
