"""Syncs end to end, through the API and the REAL running syncer, to every destination kind.

For each kind: a sync is created over the API; a certificate issued over the API appears at
the destination (read back with the destination's own client) and `GET …/syncs/{id}/
certificates` says `succeeded` with the external id; a renewal (`POST …/renew`, `Prefer:
wait`) replaces the SAME object (same ACM ARN, secret, KV path, directory, Kubernetes Secret,
Key Vault certificate: no second one); a revocation with `remove_on_revoke` removes it
(status `removed`). Every final outcome is also a `sync.succeeded` event.

What each destination is:
- `aws-acm`, `aws-secrets-manager`: a real `moto_server` (the plugin tests' fixture);
- `vault-kv`: a real OpenBao dev server over TLS (the plugin tests' fixture);
- `directory`: a temporary directory;
- `webhook`: a real HTTP server in this process verifying `Certforge-Signature`;
- `kubernetes-tls`: the request-checking FAKE Kubernetes API server of the plugin tests
  (no API server can run here);
- `azure-keyvault`: the FAKE Entra ID + Key Vault of the plugin tests.
A kind not (yet) in `registry.KINDS` is skipped, naming the missing registration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import test_sync_plugin_aws as aws_tests
import test_sync_plugin_azure as azure_tests
import test_sync_plugin_kubernetes as k8s_tests
import test_sync_plugin_vault as vault_tests
from azure.keyvault.certificates._shared import http_challenge_cache
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certforge.syncer.plugins import azure_keyvault, registry
from issuance_kit import WAIT, Enrollment, enroll, issue, pem_blocks
from sync_plugin_kit import sync_ca
from syncs_kit import (
    PUSHED,
    REMOVED,
    WebhookReceiver,
    create_sync,
    eventually,
    names_in,
    states,
    sync_events,
    wait_status,
    wait_sync_event,
    webhook_credentials,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# The plugin tests' destination fixtures, module-scoped here too.
moto = aws_tests.moto
bao = vault_tests.bao
tls_files = k8s_tests.tls_files
fake_server = k8s_tests.fake_server
env = azure_tests.env

FILES = ("cert.pem", "chain.pem", "fullchain.pem", "key.pem")
AWS_CREDENTIALS = {"access_key_id": aws_tests.ACCESS_KEY, "secret_access_key": aws_tests.SECRET_KEY}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = await WebhookReceiver().start()
    yield started
    await started.stop()


def _skip_unless_registered(kind: str) -> None:
    if kind not in registry.KINDS:
        pytest.skip(
            f"destination kind {kind!r} is not registered: add its class to _KINDS in "
            "services/syncer/src/certforge/syncer/plugins/registry.py"
        )


# --- one harness per destination kind ---------------------------------------------------------


@dataclass
class Target:
    """How to configure a sync for a destination and read back what it holds."""

    kind: str
    settings: dict[str, Any]
    credentials: dict[str, Any] | None
    held: Callable[[str], Awaitable[str | None]]
    """The leaf PEM the object named by an external id holds now; None once it is gone."""
    count: Callable[[str], Awaitable[int]]
    """How many objects the destination holds for a lineage id."""
    extra: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    """Further checks of the object (external id, the issued certificate)."""
    options: dict[str, Any] = field(default_factory=dict)


def _leaf(pem_text: str) -> str:
    return pem_blocks(pem_text)[0]


def _same_pem(a: str | None, b: str) -> bool:
    return a is not None and a.strip() == b.strip()


def _acm(moto: aws_tests.Moto) -> Target:
    client = moto.client("acm")

    async def held(arn: str) -> str | None:
        try:
            found = await asyncio.to_thread(client.get_certificate, CertificateArn=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return str(found["Certificate"])

    async def count(lineage: str) -> int:
        def scan() -> int:
            arns = [
                c["CertificateArn"]
                for page in client.get_paginator("list_certificates").paginate()
                for c in page["CertificateSummaryList"]
            ]
            return sum(
                1
                for arn in arns
                for tag in client.list_tags_for_certificate(CertificateArn=arn)["Tags"]
                if tag["Key"] == "certforge:lineage-id" and tag.get("Value") == lineage
            )

        return await asyncio.to_thread(scan)

    async def extra(arn: str, issued: dict[str, Any]) -> None:
        found = await asyncio.to_thread(client.get_certificate, CertificateArn=arn)
        assert _leaf(found["CertificateChain"]) == _leaf(issued["chain"])  # issuing CA first
        tags = await asyncio.to_thread(client.list_tags_for_certificate, CertificateArn=arn)
        assert {"Key": "team", "Value": "payments"} in tags["Tags"]

    settings = {"region": aws_tests.REGION, "endpoint_url": moto.url, "tags": {"team": "payments"}}
    return Target("aws-acm", settings, AWS_CREDENTIALS, held, count, extra)


def _secrets(moto: aws_tests.Moto) -> Target:
    client = moto.client("secretsmanager")

    async def document(arn: str) -> dict[str, Any] | None:
        try:
            found = await asyncio.to_thread(client.get_secret_value, SecretId=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        loaded: dict[str, Any] = json.loads(found["SecretString"])
        return loaded

    async def held(arn: str) -> str | None:
        found = await document(arn)
        return None if found is None else str(found["certificate"])

    async def count(lineage: str) -> int:
        def scan() -> int:
            listed = [
                s
                for page in client.get_paginator("list_secrets").paginate()
                for s in page["SecretList"]
            ]
            return sum(
                1
                for s in listed
                for tag in s.get("Tags", [])
                if tag["Key"] == "certforge:lineage-id" and tag["Value"] == lineage
            )

        return await asyncio.to_thread(scan)

    async def extra(arn: str, issued: dict[str, Any]) -> None:
        found = await document(arn)
        assert found is not None
        assert found["certificate_id"] == issued["id"]
        assert found["serial_number"] == issued["serial_number"].lower()
        key = serialization.load_pem_private_key(found["private_key"].encode(), None)
        cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
        assert _spki(key.public_key()) == _spki(cert.public_key())
        versions = await asyncio.to_thread(client.list_secret_version_ids, SecretId=arn)
        assert len(versions["Versions"]) <= 2  # one per certificate of the lineage

    settings = {"region": aws_tests.REGION, "endpoint_url": moto.url}
    return Target("aws-secrets-manager", settings, AWS_CREDENTIALS, held, count, extra)


def _spki(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _vault(bao: vault_tests.Bao) -> Target:
    import hvac.exceptions

    kv = bao.root.secrets.kv.v2

    async def data(path: str) -> dict[str, Any] | None:
        try:
            found = await asyncio.to_thread(
                kv.read_secret_version,
                path=path,
                mount_point="secret",
                raise_on_deleted_version=True,
            )
        except hvac.exceptions.InvalidPath:
            return None
        loaded: dict[str, Any] = found["data"]
        return loaded

    async def held(path: str) -> str | None:
        found = await data(path)
        return None if found is None else str(found["data"]["certificate"])

    async def count(lineage: str) -> int:
        try:
            listed = await asyncio.to_thread(
                kv.list_secrets, path="certforge", mount_point="secret"
            )
        except hvac.exceptions.InvalidPath:
            return 0
        return sum(1 for key in listed["data"]["keys"] if lineage in key)

    async def extra(path: str, issued: dict[str, Any]) -> None:
        found = await data(path)
        assert found is not None
        assert found["data"]["certificate_id"] == issued["id"]
        assert found["data"]["fullchain"].startswith(issued["certificate"].strip())
        assert "PRIVATE KEY" in found["data"]["private_key"]

    settings = {"url": bao.url, "ca_pem": bao.ca_pem, "timeout_seconds": 5}
    return Target("vault-kv", settings, {"token": vault_tests.ROOT_TOKEN}, held, count, extra)


def _directory(root: Path) -> Target:
    async def held(folder: str) -> str | None:
        path = Path(folder) / "cert.pem"
        return path.read_text() if path.exists() else None

    async def count(lineage: str) -> int:
        return sum(1 for name in await names_in(root) if lineage in name)

    async def extra(folder: str, issued: dict[str, Any]) -> None:
        path = Path(folder)
        assert path.parent == root
        assert path.name.startswith("web.example.com-")  # the name template
        chain = x509.load_pem_x509_certificates((path / "chain.pem").read_bytes())
        issued_chain = x509.load_pem_x509_certificates(issued["chain"].encode())
        assert chain == [c for c in issued_chain if c.issuer != c.subject]  # no root by default
        assert (path / "fullchain.pem").read_text() == issued["certificate"] + (
            path / "chain.pem"
        ).read_text()
        assert stat.S_IMODE(os.stat(path / "key.pem").st_mode) == 0o600
        assert "PRIVATE KEY" in (path / "key.pem").read_text()
        assert await names_in(path) == sorted(FILES)  # and no temporary file left

    options = {"name_template": "{common_name}-{certificate_id}"}
    return Target("directory", {"path": str(root)}, None, held, count, extra, options)


def _webhook(receiver: WebhookReceiver) -> Target:
    url, hook = receiver.hook()

    def last(lineage: str) -> dict[str, Any] | None:
        events = [e for e in hook.accepted if e["data"].get("lineage_id") == lineage]
        return events[-1] if events else None

    async def held(external_id: str) -> str | None:
        assert external_id == url
        events = hook.accepted
        if not events or events[-1]["type"] != PUSHED:
            return None
        return str(events[-1]["data"]["certificate"])

    async def count(lineage: str) -> int:
        event = last(lineage)
        return 1 if event is not None and event["type"] == PUSHED else 0

    async def extra(external_id: str, issued: dict[str, Any]) -> None:
        assert hook.bad_signatures == 0
        pushes = [e for e in hook.accepted if e["data"]["certificate_id"] == issued["id"]]
        assert len(pushes) == 1  # no duplicate
        event = pushes[0]
        assert event["specversion"] == "1.0"
        assert event["type"] == PUSHED
        assert event["source"] == "/certforge/syncer"
        assert "private_key" not in event["data"]  # only when include_private_key is set
        assert event["data"]["serial_number"] == issued["serial_number"].lower()

    return Target("webhook", {"url": url}, webhook_credentials(hook), held, count, extra)


def _kubernetes(fake: k8s_tests.FakeKubernetes) -> Target:
    async def held(external_id: str) -> str | None:
        namespace, _, name = external_id.partition("/")
        secret = fake.secrets.get((namespace, name))
        if secret is None:
            return None
        return _leaf(base64.b64decode(secret["data"]["tls.crt"]).decode())

    async def count(lineage: str) -> int:
        return sum(
            1
            for s in fake.secrets.values()
            if s["metadata"]["annotations"].get("certforge.io/lineage-id") == lineage
        )

    async def extra(external_id: str, issued: dict[str, Any]) -> None:
        namespace, _, name = external_id.partition("/")
        secret = fake.secrets[(namespace, name)]
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        key = serialization.load_pem_private_key(data["tls.key"].encode(), None)
        cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
        assert _spki(key.public_key()) == _spki(cert.public_key())
        assert secret["type"] == "kubernetes.io/tls"
        assert secret["metadata"]["annotations"]["certforge.io/certificate-id"] == issued["id"]
        assert fake.violations == []

    settings = {
        "namespace": "certs",
        "api_server": fake.url,
        "ca_pem": sync_ca().root_pem,
        "timeout_seconds": 5,
    }
    return Target("kubernetes-tls", settings, {"token": "good-token"}, held, count, extra)


def _azure(fake: azure_tests.FakeAzure) -> Target:
    def name_of(external_id: str) -> str:
        assert external_id.startswith(f"{fake.vault}/certificates/"), external_id
        return external_id.rsplit("/", 1)[1]

    async def held(external_id: str) -> str | None:
        versions = fake.certificates.get(name_of(external_id))
        if not versions:
            return None
        return versions[-1].certificate.public_bytes(serialization.Encoding.PEM).decode()

    async def count(lineage: str) -> int:
        return sum(1 for name in fake.certificates if lineage in name)

    async def extra(external_id: str, issued: dict[str, Any]) -> None:
        latest = fake.certificates[name_of(external_id)][-1]
        cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
        assert _spki(latest.key.public_key()) == _spki(cert.public_key())
        assert fake.problems == []

    settings = {
        "vault_url": fake.vault,
        "tenant_id": azure_tests.TENANT,
        "client_id": azure_tests.CLIENT_ID,
        "authority_host": fake.authority,
        "disable_instance_discovery": True,
        "timeout_seconds": 5,
    }
    credentials = {"client_secret": azure_tests.SECRET}
    return Target("azure-keyvault", settings, credentials, held, count, extra)


@pytest.fixture
def azure_fake(
    env: azure_tests.Env, monkeypatch: pytest.MonkeyPatch
) -> Iterator[azure_tests.FakeAzure]:
    """The plugin tests' fake Azure, reachable by name and trusted, for this test only (what
    their autouse `fake` fixture does)."""
    env.fake.reset()
    env.server.reset_release()
    http_challenge_cache.clear()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in azure_tests.FAKE_HOSTS:
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(env.ca_file))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(azure_keyvault, "DELETE_POLL_SECONDS", 0.05)
    yield env.fake
    env.server.release_hanging()
    assert env.fake.problems == []


KINDS = [
    "aws-acm",
    "aws-secrets-manager",
    "vault-kv",
    "directory",
    "webhook",
    "kubernetes-tls",
    "azure-keyvault",
]


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    kind: str = request.param
    _skip_unless_registered(kind)
    value = request.getfixturevalue
    if kind == "aws-acm":
        return _acm(value("moto"))
    if kind == "aws-secrets-manager":
        return _secrets(value("moto"))
    if kind == "vault-kv":
        return _vault(value("bao"))
    if kind == "directory":
        return _directory(tmp_path)
    if kind == "webhook":
        return _webhook(value("receiver"))
    if kind == "kubernetes-tls":
        return _kubernetes(value("fake_server"))
    return _azure(value("azure_fake"))


# --- the lifecycle, per destination ----------------------------------------------------------


async def _renew(admin: httpx.AsyncClient, e: Enrollment, certificate_id: str) -> dict[str, Any]:
    r = await admin.post(f"{e.certificates}/{certificate_id}/renew", headers=WAIT, json={})
    assert r.status_code == 201, r.text
    renewed: dict[str, Any] = r.json()["certificate"]
    return renewed


async def _revoke(
    admin: httpx.AsyncClient, e: Enrollment, certificate_id: str, reason: str
) -> None:
    r = await admin.post(f"{e.certificates}/{certificate_id}/revoke", json={"reason": reason})
    assert r.status_code == 200, r.text


async def test_issue_renew_revoke(
    admin: httpx.AsyncClient, api_app: Any, syncer: Any, target: Target
) -> None:
    e = await enroll(admin)
    sync = await create_sync(
        admin,
        e.app,
        target.kind,
        target.settings,
        credentials=target.credentials,
        options=target.options,
    )
    assert sync["has_credentials"] is (target.credentials is not None)

    # issue → the certificate is at the destination
    first = (
        await issue(
            admin,
            e,
            common_name="web.example.com",
            sans=[{"type": "dns", "value": "web.example.com"}],
        )
    )["certificate"]
    lineage = first["id"]  # the first certificate of a lineage names it
    state = await wait_status(admin, e.app, sync["id"], first["id"], "succeeded")
    external_id = state["external_id"]
    assert external_id, state
    assert state["lineage_id"] == lineage
    assert state["action"] == "push"
    assert state["attempts"] == 1
    assert state["last_error"] is None
    assert state["last_synced_at"] is not None
    assert _same_pem(await target.held(external_id), first["certificate"])
    assert await target.count(lineage) == 1
    if target.extra is not None:
        await target.extra(external_id, first)
    event = await wait_sync_event(
        api_app, e.app, "sync.succeeded", lambda d: d["certificate_id"] == first["id"]
    )
    assert event["data"]["external_id"] == external_id
    assert event["data"]["kind"] == target.kind

    # renew → the same object holds the new certificate, no second object
    second = await _renew(admin, e, first["id"])
    assert second["id"] != first["id"]
    state = await wait_status(admin, e.app, sync["id"], second["id"], "succeeded")
    assert state["external_id"] == external_id
    assert state["lineage_id"] == lineage
    assert _same_pem(await target.held(external_id), second["certificate"])
    assert await target.count(lineage) == 1
    if target.extra is not None:
        await target.extra(external_id, second)
    assert len(await states(admin, e.app, sync["id"])) == 1  # one state per lineage

    # revoke (remove_on_revoke is the default) → gone
    await _revoke(admin, e, second["id"], "keyCompromise")
    state = await wait_status(admin, e.app, sync["id"], second["id"], "removed")
    assert state["action"] == "remove"
    assert state["external_id"] == external_id
    assert await target.held(external_id) is None
    assert await target.count(lineage) == 0


async def test_webhook_removal_event_and_opt_in_private_key(
    admin: httpx.AsyncClient, syncer: Any, receiver: WebhookReceiver
) -> None:
    url, hook = receiver.hook()
    e = await enroll(admin)
    sync = await create_sync(
        admin,
        e.app,
        "webhook",
        {"url": url, "include_private_key": True},
        credentials=webhook_credentials(hook),
    )
    issued = (await issue(admin, e, common_name="hook.example.com"))["certificate"]
    await wait_status(admin, e.app, sync["id"], issued["id"], "succeeded")
    [pushed] = hook.accepted_of(PUSHED, issued["id"])
    key = serialization.load_pem_private_key(pushed["data"]["private_key"].encode(), None)
    cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert _spki(key.public_key()) == _spki(cert.public_key())
    assert pushed["subject"] == issued["id"]

    await _revoke(admin, e, issued["id"], "cessationOfOperation")
    await wait_status(admin, e.app, sync["id"], issued["id"], "removed")
    [removed] = hook.accepted_of(REMOVED, issued["id"])
    assert removed["data"]["certificate_id"] == issued["id"]
    assert removed["data"]["serial_number"] == issued["serial_number"].lower()
    assert "certificate" not in removed["data"]
    assert hook.bad_signatures == 0


async def test_revoking_the_replaced_certificate_keeps_the_renewed_one(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Revoking (or the expiry of) the certificate a renewal replaced must not remove the
    object, which now holds the renewal."""
    e = await enroll(admin)
    sync = await create_sync(admin, e.app, "directory", {"path": str(tmp_path)})
    first = (await issue(admin, e, common_name="keep.example.com"))["certificate"]
    await wait_status(admin, e.app, sync["id"], first["id"], "succeeded")
    second = await _renew(admin, e, first["id"])
    state = await wait_status(admin, e.app, sync["id"], second["id"], "succeeded")
    folder = Path(state["external_id"])

    await _revoke(admin, e, first["id"], "superseded")
    # A barrier: a certificate issued after the revocation reaches the same sync; by then the
    # revocation's event has been handled too (one stream, in order).
    third = (await issue(admin, e, common_name="after.example.com"))["certificate"]
    await wait_status(admin, e.app, sync["id"], third["id"], "succeeded")
    await asyncio.sleep(0.5)

    assert (folder / "cert.pem").read_text() == second["certificate"]
    [kept] = [s for s in await states(admin, e.app, sync["id"]) if s["lineage_id"] == first["id"]]
    assert kept["status"] == "succeeded"
    assert kept["certificate_id"] == second["id"]


async def test_pushing_twice_writes_no_second_object(
    admin: httpx.AsyncClient, api_app: Any, syncer: Any, moto: aws_tests.Moto
) -> None:
    """`POST …/run` twice for the same certificate (as a redelivered event would): ACM is
    imported into the same ARN again, no second certificate appears."""
    target = _acm(moto)
    e = await enroll(admin)
    issued = (await issue(admin, e, common_name="again.example.com"))["certificate"]
    sync = await create_sync(
        admin, e.app, "aws-acm", target.settings, credentials=target.credentials
    )
    arns = set()
    for _ in range(2):
        before = len(await sync_events(api_app, e.app, "sync.succeeded"))
        r = await admin.post(f"/api/v1/applications/{e.app}/syncs/{sync['id']}/run")
        assert r.status_code == 200, r.text
        assert r.json() == {"queued": 1}
        events = await eventually(_more_events(api_app, e.app, before), 20, "sync.succeeded")
        arns.add(events[-1]["data"]["external_id"])
    assert len(arns) == 1
    assert await target.count(issued["id"]) == 1
    [state] = await states(admin, e.app, sync["id"])
    assert state["external_id"] in arns


def _more_events(
    api_app: Any, app: str, before: int
) -> Callable[[], Awaitable[list[dict[str, Any]] | None]]:
    """A probe: the app's `sync.succeeded` events once there are more than `before`."""

    async def probe() -> list[dict[str, Any]] | None:
        events = await sync_events(api_app, app, "sync.succeeded")
        return events if len(events) > before else None

    return probe
