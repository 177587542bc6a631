"""Backup and restore (issue 18): a running system is backed up with `certforge-admin backup`,
restored into an empty database and a new NATS namespace, and goes on where it stopped: every
CA, certificate, key, profile and setting is back, the CAs keep signing, CRL numbers keep
increasing, and the outbox publishes what was not sent yet, and nothing that was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import nats
import pytest
from cryptography import x509

from admin_kit import API, ok
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.pool import plain_url
from certforge.common.db.sealed import Ring
from certforge.common.errors import Conflict, Unprocessable
from certforge.issuer.admin.backup import backup, read_manifest, restore
from harness import Backends
from issuance_kit import Enrollment, enroll, issue, pem_blocks
from lifecycle_kit import eventually, stream_messages
from pki_tools import openssl_verify
from system_kit import Place, a_system, drop, new_place

pytestmark = pytest.mark.integration

CA_KEKS = KeyRing.generate_text("ca-1")
LEAF_KEKS = KeyRing.generate_text("leaf-1")
RINGS = {Ring.CA: KeyRing.parse(CA_KEKS), Ring.LEAF: KeyRing.parse(LEAF_KEKS)}
KEPT = (
    "certificate_authorities",
    "certificates",
    "policies",
    "profiles",
    "applications",
    "application_profiles",
    "identities",
    "api_tokens",
    "sync_destinations",
    "ocsp_responders",
)


def _managed(host: str) -> dict[str, Any]:
    return {"method": "managed", "common_name": host, "key_algorithm": "EC_P256", "ttl": "30d"}


async def _query(place: Place, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(place.database_url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _rows(place: Place, table: str) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in await _query(place, f"SELECT * FROM {table}")}


def _revoked(crl: x509.CertificateRevocationList) -> set[int]:
    return {entry.serial_number for entry in crl}


async def test_backup_then_restore_into_an_empty_database_and_a_new_namespace(
    backends: Backends, env_for: None, tmp_path: Path
) -> None:
    source = await new_place(backends)
    target = await new_place(backends, migrated=False)
    archive = tmp_path / "certforge.backup"
    try:
        async with a_system(source, ca_keks=CA_KEKS, leaf_keks=LEAF_KEKS) as old:
            e = await enroll(old.admin)
            made = [await issue(old.admin, e, **_managed(f"r{i}.example.com")) for i in range(3)]
            first = made[0]["certificate"]
            ok(
                await old.admin.post(
                    f"{e.certificates}/{first['id']}/revoke", json={"reason": "superseded"}
                )
            )
            serial = int(first["serial_number"], 16)
            crl = await eventually(
                lambda: _crl_listing(old.admin, e, serial), what="the first CRL lists it"
            )
            number_before = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            ok(
                await old.admin.post(
                    f"{API}/applications/{e.app}/syncs",
                    json={
                        "name": "hook",
                        "kind": "webhook",
                        "settings": {"url": "https://hooks.example.com/x"},
                        "credentials": {"hmac_secret": "s3cret-value-of-enough-length"},
                    },
                ),
                201,
            )
            # The relays fall behind (NATS slow, say): what happens now is committed but unsent.
            old.issuer.relay.stop()
            old.api_app.state.certforge.relay.stop()
            await old.issuer.relay.publish_pending()
            await old.api_app.state.certforge.relay.publish_pending()
            second = made[1]["certificate"]
            ok(
                await old.admin.post(
                    f"{e.certificates}/{second['id']}/revoke", json={"reason": "keyCompromise"}
                )
            )
            unsent_request = ok(
                await old.admin.post(e.requests, json=e.body(**_managed("u.example.com"))), 202
            )
            consumed_request = ok(
                await old.admin.post(e.requests, json=e.body(**_managed("c.example.com"))), 202
            )
            # This command reached the old stream, whose issuer never took it.
            await _query(
                source,
                "UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL AND subject = $1 "
                "AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'request_id' = $2",
                Subjects(source.namespace).cmd_issue,
                consumed_request["id"],
            )
            outbox = await _query(source, "SELECT id, subject, sent_at FROM outbox")
            kept = {table: await _rows(source, table) for table in KEPT}
            key_of_third = (
                await old.admin.get(f"{e.certificates}/{made[2]['certificate']['id']}/private-key")
            ).text

            manifest = await backup(source.database_url, source.namespace, archive)

        sent = {r["id"] for r in outbox if r["sent_at"] is not None}
        unsent_events = {
            r["id"] for r in outbox if r["sent_at"] is None and ".evt." in r["subject"]
        }
        assert unsent_events, "the revocation's event should be waiting in the outbox"
        assert manifest.namespace == source.namespace
        assert read_manifest(archive).kids["certificate_authorities.encrypted_private_key"] == {
            "ca-1": 2
        }

        # A restore that could not open the keys, or would overwrite data, changes nothing.
        with pytest.raises(Unprocessable, match="ca-1"):
            await restore(
                archive,
                target.database_url,
                target.namespace,
                {
                    Ring.CA: KeyRing.parse(KeyRing.generate_text("other")),
                    Ring.LEAF: RINGS[Ring.LEAF],
                },
            )
        with pytest.raises(Conflict):
            await restore(archive, source.database_url, target.namespace, RINGS)

        report = await restore(archive, target.database_url, target.namespace, RINGS)
        assert report.requests_requeued == 2
        for table, rows in kept.items():
            assert await _rows(target, table) == rows, table

        async with a_system(target, ca_keks=CA_KEKS, leaf_keks=LEAF_KEKS) as new:
            # Keys are back: the managed key reads the same.
            r = await new.admin.get(f"{e.certificates}/{made[2]['certificate']['id']}/private-key")
            assert r.text == key_of_third
            # Pending requests complete: the unsent command and the one the old stream swallowed.
            for request in (unsent_request, consumed_request):
                done = await eventually(
                    lambda request=request: _issued(new.admin, e, request["id"]),
                    what="a restored pending request is issued",
                )
                assert done["certificate"]["private_key"].startswith("-----BEGIN PRIVATE KEY")
            # The restored CAs keep signing, under the same root.
            fresh = await issue(new.admin, e, **_managed("after.example.com"))
            chain = pem_blocks(fresh["certificate"]["chain"])
            openssl_verify(
                e.root["certificate"], chain[:-1] or chain, fresh["certificate"]["certificate"]
            )
            # CRL numbers go on increasing, and the revocation made while unsent is listed.
            crl = await eventually(
                lambda: _crl_listing(new.admin, e, int(second["serial_number"], 16)),
                what="the restored issuer's CRL lists the late revocation",
            )
            number_after = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            assert number_after > number_before
            assert serial in _revoked(crl)
            # The outbox resumed: everything unsent went out, nothing sent went out again.
            await eventually(lambda: _nothing_unsent(target), what="the restored outbox is drained")
            client = await nats.connect(backends.nats_url)
            try:
                js = client.jetstream()
                subjects = Subjects(target.namespace)
                published = await stream_messages(
                    js, subjects.events_stream, subjects.events_wildcard
                )
            finally:
                await client.close()
            ids = {UUID(m["id"]) for m in published}
            assert unsent_events <= ids
            assert not ids & sent
    finally:
        await drop(source)
        await drop(target)


async def _crl_listing(
    client: Any, e: Enrollment, serial: int
) -> x509.CertificateRevocationList | None:
    r = await client.get(f"{API}/cas/{e.issuing['id']}/crl")
    if r.status_code != 200:
        return None
    crl = x509.load_der_x509_crl(r.content)
    return crl if serial in _revoked(crl) else None


async def _issued(client: Any, e: Enrollment, request_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = ok(await client.get(f"{e.requests}/{request_id}"))
    return body if body["status"] == "issued" else None


async def _nothing_unsent(place: Place) -> bool:
    rows = await _query(place, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return rows[0][0] == 0
