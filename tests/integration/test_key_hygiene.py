"""No key or token material anywhere but where it belongs (issue 20).

A full lifecycle runs against the session's real api, issuer and syncer: a managed and a CSR
issuance, a renewal, a revocation, a sync to a directory, a new identity token and an ACME EAB
key. Meanwhile every log record of this process (api, issuer and syncer all log here) and every
message published on the session's NATS namespace (commands, events, replies) is captured;
afterwards every value of every table is read. None may contain a private key in PEM (its
marker), the managed key's or the CSR key's DER in base64, or any token or EAB HMAC key issued
in the run. The database holds keys only encrypted and tokens only hashed.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_kit import create_eab_key, enable_acme
from admin_kit import API, ClientFor, create_identity, ok, put_member
from harness import Backends
from issuance_kit import WAIT, enroll
from syncs_kit import create_sync, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PRIVATE_KEY_MARKERS = (
    "PRIVATE KEY-----",
    "PRIVATE KEY\\n",
    "BEGIN EC PRIVATE",
    "BEGIN RSA PRIVATE",
)


def _der_fragments(key_pem: str) -> list[str]:
    """Pieces of a private key's base64 DER long enough to be unmistakable (one PEM line, and
    the unwrapped base64 of the whole DER), for a search that ignores line breaks."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    return [body[0], base64.b64encode(der).decode()[:48], der.hex()[:64]]


def _csr(common_name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem


async def _every_database_value(backends: Backends) -> str:
    conn = await asyncpg.connect(backends.database_url.replace("+asyncpg", ""))
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        dumped = []
        for row in tables:
            name = row["table_name"]
            rows = await conn.fetch(f'SELECT row_to_json(t)::text AS j FROM "{name}" t')
            dumped.extend(f"{name}: {r['j']}" for r in rows)
        return "\n".join(dumped)
    finally:
        await conn.close()


async def test_no_key_or_token_in_logs_messages_or_database(
    admin: httpx.AsyncClient,
    client_for: ClientFor,
    api_app: Any,
    backends: Backends,
    syncer: object,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    published: list[str] = []
    bus = await nats.connect(backends.nats_url)

    async def keep(msg: Any) -> None:
        published.append(f"{msg.subject} {msg.headers or {}} {msg.data.decode(errors='replace')}")

    await bus.subscribe(">", cb=keep)
    secrets: list[str] = []
    try:
        e = await enroll(admin)
        operator = await create_identity(admin)
        await put_member(admin, e.app, operator["id"], "operator")
        secrets.append(operator["token"])
        more = ok(await admin.post(f"{API}/identities/{operator['id']}/tokens", json={}), 201)
        secrets.append(more["token"])
        me = client_for(operator["token"])
        await create_sync(admin, e.app, "directory", {"path": str(tmp_path)})

        managed = await me.post(e.requests, headers=WAIT, json=e.body(common_name="m.example.com"))
        assert managed.status_code == 201, managed.text
        certificate = managed.json()["certificate"]
        key_response = await me.get(f"{e.certificates}/{certificate['id']}/private-key")
        assert key_response.status_code == 200, key_response.text
        key_pem = key_response.text
        csr_pem, csr_key = _csr("c.example.com")
        by_csr = await me.post(e.requests, headers=WAIT, json=e.body(method="csr", csr=csr_pem))
        assert by_csr.status_code == 201, by_csr.text
        renewed = await me.post(
            f"{e.certificates}/{certificate['id']}/renew", headers=WAIT, json={"key": "new"}
        )
        assert renewed.status_code in (200, 201, 202), renewed.text
        revoked = await me.post(
            f"{e.certificates}/{by_csr.json()['certificate']['id']}/revoke",
            json={"reason": "superseded"},
        )
        assert revoked.status_code in (200, 202), revoked.text
        sync_id = ok(await admin.get(f"{API}/applications/{e.app}/syncs"))["items"][0]["id"]
        await wait_state(admin, e.app, sync_id, lambda s: s["status"] == "succeeded")

        await enable_acme(api_app, e, eab_required=True)
        _, hmac_key = await create_eab_key(api_app, e)
        secrets.append(hmac_key)
        secrets.append(backends.admin_token)
        keys = [key_pem, csr_key]
        await bus.flush()
    finally:
        await bus.close()

    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {vars(r)}" for r in caplog.records)
    stored = await _every_database_value(backends)
    for where, text in {
        "logs": logged,
        "messages": "\n".join(published),
        "database": stored,
    }.items():
        flat = text.replace("\\n", "").replace("\n", "")
        for marker in PRIVATE_KEY_MARKERS:
            assert marker not in text, f"a private key marker {marker!r} in the {where}"
        for key in keys:
            for fragment in _der_fragments(key):
                assert fragment not in flat, f"private key material in the {where}"
        for secret in secrets:
            assert secret not in text, f"a token or EAB key in the {where}"
    assert published, "no message was captured"
    assert caplog.records, "no log record was captured"
