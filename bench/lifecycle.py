"""Lifecycle benchmarks (part of `make bench`): the renewal scan at scale and CRL generation.

Both run against the PostgreSQL and NATS of the system `run.py` started, in a database and a
NATS namespace of their own, with the services' real code (`RenewalScanner`, `OutboxRelay`,
`RevocationPublisher`), so the figures are what a deployment would see on this machine.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

TOTAL = 1_000_000
DUE = 10_000
REVOKED = 100_000


async def renewal_scan(server_url: str, nats_url: str) -> dict[str, Any]:
    """1,000,000 certificates, 10,000 due: time to claim them and publish every renew command."""
    from certforge.common.contracts.subjects import Subjects
    from certforge.common.crypto.envelope import KeyRing
    from certforge.common.db.engine import async_url, session_factory
    from certforge.common.db.migrations import upgrade
    from certforge.common.db.pool import LazyPool
    from certforge.common.messaging import connect, delete_streams, ensure_streams
    from certforge.common.outbox import OutboxRelay
    from certforge.common.settings import NatsSettings, OutboxSettings
    from certforge.devstack import create_database, drop_database
    from certforge.issuer.ca_cache import SignerCache
    from certforge.issuer.revocation import RevocationPublisher, RevocationSettings
    from certforge.renewer.scan import RenewalScanner
    from certforge.renewer.settings import ScanSettings

    name = f"bench_lifecycle_{uuid4().hex[:6]}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(async_url(url), pool_size=4)
    sessions = session_factory(engine)
    database = LazyPool(url, max_size=4)
    subjects = Subjects(f"b{uuid4().hex[:6]}")
    nats = await connect(nats_url, name="bench")
    results: dict[str, Any] = {}
    try:
        js = nats.jetstream()
        await ensure_streams(js, subjects, NatsSettings())
        ca_keys = KeyRing.parse(KeyRing.generate_text("bench-ca"))
        leaf_keys = KeyRing.parse(KeyRing.generate_text("bench-leaf"))
        ca_id = await _seed(engine, ca_keys)
        start = time.perf_counter()
        await _fill(engine, ca_id)
        results["seed_seconds"] = time.perf_counter() - start
        now = datetime.now(UTC)

        async with engine.connect() as conn:
            await conn.execute(sa.text("ANALYZE certificates"))
            plan = (
                (
                    await conn.execute(
                        sa.text(
                            # the claim as `RenewalScanner.claim_due` sends it
                            "EXPLAIN SELECT id FROM certificates WHERE status = 'active' "
                            "AND auto_renew AND renewed_by_id IS NULL "
                            "AND renewing_request_id IS NULL "
                            "AND encrypted_private_key IS NOT NULL AND renew_at <= :now "
                            "AND ca_id IN (:ca) ORDER BY renew_at LIMIT 500 "
                            "FOR UPDATE SKIP LOCKED"
                        ),
                        {"now": now, "ca": ca_id},
                    )
                )
                .scalars()
                .all()
            )
        results["plan"] = "\n".join(plan)

        relay = OutboxRelay(database, js, OutboxSettings(batch_size=1000))
        scanner = RenewalScanner(sessions, subjects, ScanSettings(batch_size=1000))
        start = time.perf_counter()
        claimed = 0
        while (n := await scanner.claim_due(now)) > 0:
            claimed += n
        results["claim_seconds"] = time.perf_counter() - start
        while await relay.publish_pending() > 0:
            pass
        results["emit_seconds"] = time.perf_counter() - start
        results["claimed"] = claimed
        info = await js.stream_info(subjects.commands_stream)
        results["commands_in_stream"] = info.state.messages
        start = time.perf_counter()
        assert await scanner.claim_due(now) == 0
        results["empty_scan_ms"] = (time.perf_counter() - start) * 1000

        # CRL of one CA with 100,000 revoked certificates, through the issuer's own code
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "UPDATE certificates SET status = 'revoked', revoked_at = now(), "
                    "revocation_reason = 'keyCompromise' WHERE id IN "
                    "(SELECT id FROM certificates WHERE status = 'active' LIMIT :n)"
                ),
                {"n": REVOKED},
            )
            await conn.execute(sa.text("UPDATE certificate_authorities SET crl_dirty = true"))
        publisher = RevocationPublisher(
            sessions, SignerCache(ca_keys), leaf_keys, RevocationSettings()
        )
        start = time.perf_counter()
        built = await publisher.refresh()
        results["crl_seconds"] = time.perf_counter() - start
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text("SELECT entries, length(der) FROM crls ORDER BY number DESC LIMIT 1")
                )
            ).one()
        results["crl_entries"], results["crl_bytes"] = row
        assert built == 1
    finally:
        await delete_streams(nats.jetstream(), subjects, NatsSettings())
        await nats.close()
        await database.close()
        await engine.dispose()
        await drop_database(server_url, name)
    return results


async def _seed(engine: Any, ca_keys: Any) -> Any:
    """One application, root CA, policy and profile for the certificates to hang from."""
    from certforge.common.crypto.certificates import (
        build_self_signed_ca,
        certificate_to_pem,
        key_identifier_of,
    )
    from certforge.common.crypto.keys import generate_private_key, private_key_to_der
    from certforge.common.domain import KeyAlgorithm, SubjectFields

    key = generate_private_key(KeyAlgorithm.EC_P256)
    now = datetime.now(UTC)
    cert = build_self_signed_ca(
        SubjectFields(common_name="Bench Lifecycle CA"),
        key,
        now,
        now + timedelta(days=3650),
        None,
        None,
    )
    ca_id = uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO applications (id, slug, name, description, created_at, updated_at) "
                "VALUES (:id, 'bench', 'Bench', '', now(), now())"
            ),
            {"id": APP},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO certificate_authorities (id, name, type, status, subject_dn, "
                "key_algorithm, serial_number, not_before, not_after, certificate_pem, chain_pem, "
                "subject_key_id, encrypted_private_key, key_kek_id, crl_number, crl_dirty, "
                "created_at, updated_at) VALUES (:id, 'bench', 'root', 'active', 'CN=Bench', "
                "'EC_P256', '1', :nb, :na, :pem, '', :ski, :key, :kid, 0, false, now(), now())"
            ),
            {
                "id": ca_id,
                "nb": now,
                "na": now + timedelta(days=3650),
                "pem": certificate_to_pem(cert),
                "ski": key_identifier_of(cert).hex(),
                "key": ca_keys.encrypt(private_key_to_der(key), ca_id.bytes),
                "kid": ca_keys.active_kid,
            },
        )
        await conn.execute(
            sa.text(
                "INSERT INTO policies (id, name, description, document, created_at, updated_at) "
                "VALUES (:id, 'bench', '', '{}', now(), now())"
            ),
            {"id": POLICY},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO profiles (id, slug, name, description, ca_id, policy_id, defaults, "
                "created_at, updated_at) VALUES (:id, 'bench', '', '', :ca, :policy, '{}', now(), "
                "now())"
            ),
            {"id": PROFILE, "ca": ca_id, "policy": POLICY},
        )
    return ca_id


APP, POLICY, PROFILE = uuid4(), uuid4(), uuid4()


async def _fill(engine: Any, ca_id: Any) -> None:
    """1,000,000 certificates, the first 10,000 due for renewal.

    Their issuance requests are not made: the scan never reads them, so the bench database
    drops that foreign key instead of inserting a million rows nobody looks at.
    """
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("ALTER TABLE certificates DROP CONSTRAINT certificates_request_id_fkey")
        )
        await conn.execute(
            sa.text(
                "INSERT INTO certificates (id, application_id, profile_id, ca_id, request_id, "
                "serial_number, common_name, subject_dn, sans, key_algorithm, method, not_before, "
                "not_after, status, certificate_pem, fingerprint_sha256, encrypted_private_key, "
                "tags, auto_renew, renew_before_days, renew_at, renewal_attempts, created_at, "
                "updated_at) SELECT gen_random_uuid(), :app, :profile, :ca, gen_random_uuid(), "
                "to_hex(g), 'h' || g || '.example.com', 'CN=h' || g, '[]', 'EC_P256', 'managed', "
                "now() - interval '80 days', "
                "now() + interval '10 days' + (g * interval '1 second'), "
                "'active', 'x', md5('f' || g), '\\x00', '{}', true, 30, "
                "CASE WHEN g <= :due THEN now() - interval '1 hour' "
                "ELSE now() + interval '1 day' + (g * interval '1 second') END, 0, now(), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"app": APP, "profile": PROFILE, "ca": ca_id, "n": TOTAL, "due": DUE},
        )
