"""The issuer's pool of pre-generated RSA keys: encrypted at rest, handed out once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import col, select

from certforge.common.crypto.envelope import DecryptionFailedError
from certforge.common.crypto.keys import load_private_key_der
from certforge.common.db.tables import PooledKey
from certforge.common.domain import KeyAlgorithm
from certforge.issuer.keypool import KeyPool, KeyPoolSettings
from issuance_kit import enroll, issue

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
# RSA-3072: a type the session's issuer does not pool, so its own refill loop stays out
ALGORITHM = KeyAlgorithm.RSA_3072


async def test_pooled_keys_are_sealed_and_claimed_once(api_app: Any) -> None:
    context = api_app.state.certforge
    pool = KeyPool(
        context.sessions, context.leaf_keys, KeyPoolSettings(algorithms=[ALGORITHM], size=2)
    )
    assert await pool.refill() == 2
    assert await pool.refill() == 0  # full
    async with context.sessions() as session:
        rows = list(
            await session.exec(select(PooledKey).where(PooledKey.key_algorithm == ALGORITHM))
        )
    assert len(rows) == 2
    for row in rows:  # sealed, and bound to its own entry
        with pytest.raises(DecryptionFailedError):
            context.leaf_keys.decrypt(row.encrypted_key, rows[0 if row is rows[1] else 1].id.bytes)
        load_private_key_der(context.leaf_keys.decrypt(row.encrypted_key, row.id.bytes))

    async with context.db.acquire() as conn:  # a claim that rolls back hands out nothing
        transaction = conn.transaction()
        await transaction.start()
        assert len(await pool.claim(conn, ALGORITHM, 5)) == 2
        await transaction.rollback()

    async def claim() -> list[bytes]:
        async with context.db.acquire() as conn, conn.transaction():
            keys = await pool.claim(conn, ALGORITHM, 2)
            await asyncio.sleep(0.2)  # hold the rows while the other claim runs
            return [k.public_key().public_bytes(*SPKI) for k in keys]

    first, second = await asyncio.gather(claim(), claim())
    assert len(first) + len(second) == 2
    assert not set(first) & set(second)
    async with context.sessions() as session:
        left = await session.exec(select(PooledKey).where(PooledKey.key_algorithm == ALGORITHM))
        assert list(left) == []


async def test_rsa_issuance_uses_a_pooled_key(admin: httpx.AsyncClient, api_app: Any) -> None:
    context = api_app.state.certforge
    e = await enroll(admin, policy={"key_algorithms": ["EC_P256", "RSA_2048"]})
    deadline = asyncio.get_running_loop().time() + 60
    while True:  # the session's issuer fills its RSA-2048 pool at start
        async with context.sessions() as session:
            pooled = list(
                await session.exec(
                    select(PooledKey).where(PooledKey.key_algorithm == KeyAlgorithm.RSA_2048)
                )
            )
        if pooled:
            break
        assert asyncio.get_running_loop().time() < deadline, "the pool never filled"
        await asyncio.sleep(0.5)
    before = {
        load_private_key_der(context.leaf_keys.decrypt(p.encrypted_key, p.id.bytes))
        .public_key()
        .public_bytes(*SPKI): p.id
        for p in pooled
    }
    issued = await issue(
        admin,
        e,
        common_name="rsa.example.com",
        key_algorithm="RSA_2048",
        sans=[{"type": "dns", "value": "rsa.example.com"}],
    )
    cert = x509.load_pem_x509_certificate(issued["certificate"]["certificate"].encode())
    spki = cert.public_key().public_bytes(*SPKI)
    assert spki in before, "the certificate's key did not come from the pool"
    async with context.sessions() as session:
        gone = await session.exec(select(PooledKey).where(col(PooledKey.id) == before[spki]))
        assert gone.first() is None, "a handed-out key stayed in the pool"
