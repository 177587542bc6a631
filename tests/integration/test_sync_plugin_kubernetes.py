"""The `kubernetes-tls` destination against a HAND-WRITTEN FAKE of the Kubernetes API server.

No Kubernetes API server can run on this machine (no kind, no container engine), so the fake
below (aiohttp, over TLS with a certificate of the test CA) stands in for one. It is strict
about what the plugin must send — the method and path, the server-side-apply query
`fieldManager=certforge&force=true`, the `application/apply-patch+yaml` content type, the
bearer token, and the Secret itself (apiVersion, kind, name, namespace, `kubernetes.io/tls`,
base64 `tls.crt`/`tls.key`/`ca.crt`, labels, annotations) — and answers as the real server
does: the object on apply (201 on create, 200 on update), `Status` bodies for 401, 403, 404,
422 (type is immutable, missing keys), injected 429/500, a SelfSubjectAccessReview answer,
or nothing at all (hanging). Anything it does not expect is a recorded violation, and every
test ends by asserting there were none. What it does not model: admission, RBAC beyond a
per-token verb list, and the field-ownership merge of apply (it keeps what the last apply sent,
which is what the real server keeps for fields only `certforge` owns).

The official `kubernetes` client under test is the real one, talking HTTPS to the fake.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from pydantic import ValidationError

from certforge.common.crypto.certificates import build_self_signed_ca, certificate_to_pem
from certforge.common.crypto.keys import generate_private_key
from certforge.common.destinations.kubernetes_tls import (
    KubernetesTlsCredentials,
    KubernetesTlsSettings,
)
from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.syncer.plugins.base import PermanentSyncError, SyncItem, TransientSyncError
from certforge.syncer.plugins.kubernetes_tls import KubernetesTlsSecret
from sync_plugin_kit import SilentServer, closed_port, server_certificate, sync_ca, sync_item

pytestmark = pytest.mark.integration

ALL_VERBS = frozenset({"create", "patch", "delete", "get"})
TOKENS = {
    "good-token": ALL_VERBS,
    "kubeconfig-token": ALL_VERBS,
    "sa-token": ALL_VERBS,
    "patch-only-token": frozenset({"patch"}),
    "readonly-token": frozenset({"get"}),
}
APPLY_QUERY = {"fieldManager": "certforge", "force": "true"}
TLS_KEYS = {"tls.crt", "tls.key", "ca.crt"}
VERBS = web.RequestKey("verbs", frozenset)
USER = web.RequestKey("user", str)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeKubernetes:
    """The fake API server's state; `reset()` between tests."""

    namespaces: set[str] = field(default_factory=lambda: {"certs", "other"})
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    fail_next: list[int | str] = field(default_factory=list)
    hang: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    port: int = 0
    resource_version: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.violations.clear()
        self.fail_next.clear()
        self.hang = False

    # -- answers ------------------------------------------------------------------------------

    @staticmethod
    def status(code: int, reason: str, message: str, **details: Any) -> web.Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success" if code < 400 else "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        }
        return web.json_response(body, status=code)

    def violation(self, message: str) -> web.Response:
        self.violations.append(message)
        return self.status(400, "BadRequest", f"fake API server: {message}")

    # -- middleware: record, authenticate, inject -------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Seen(
                request.method,
                request.path,
                {k: request.query.getall(k) for k in request.query},
                dict(request.headers),
                body,
            )
        )
        if self.hang:
            await self.release.wait()
            return self.status(503, "ServiceUnavailable", "released")
        if self.fail_next:
            failure = self.fail_next.pop(0)
            if failure == "garbage":
                return web.Response(text="<html>login portal</html>", content_type="text/html")
            assert isinstance(failure, int)
            return self.status(failure, "InternalError", f"injected failure {failure}")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":  # the API server takes "bearer" in any case
            token = ""
        if token not in TOKENS:
            return self.status(401, "Unauthorized", "Unauthorized")
        request[VERBS] = TOKENS[token]
        request[USER] = f"system:serviceaccount:certforge:{token}"
        if request.headers.get("Accept", "").split(",")[0].strip() != "application/json":
            self.violations.append(f"Accept {request.headers.get('Accept')!r}")
        return await handler(request)

    def forbidden(self, request: web.Request, verb: str, ns: str, name: str) -> web.Response:
        return self.status(
            403,
            "Forbidden",
            f'secrets "{name}" is forbidden: User "{request[USER]}" cannot {verb} resource'
            f' "secrets" in API group "" in the namespace "{ns}"',
            name=name,
            kind="secrets",
        )

    # -- routes -----------------------------------------------------------------------------

    async def apply_secret(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        query = {k: request.query.getall(k) for k in request.query}
        if query != {k: [v] for k, v in APPLY_QUERY.items()}:
            return self.violation(f"apply query {query}")
        if request.headers.get("Content-Type") != "application/apply-patch+yaml":
            return self.violation(f"content type {request.headers.get('Content-Type')!r}")
        try:
            applied = yaml.safe_load(await request.read())
        except yaml.YAMLError:
            return self.violation("body is not YAML")
        problem = self.check_secret(applied, ns, name)
        if problem:
            return self.violation(problem)
        if ns not in self.namespaces:
            return self.status(404, "NotFound", f'namespaces "{ns}" not found', name=ns)
        existing = self.secrets.get((ns, name))
        verbs = request[VERBS]
        if "patch" not in verbs or (existing is None and "create" not in verbs):
            return self.forbidden(request, "patch" if existing else "create", ns, name)
        if existing is not None and existing.get("type") != applied["type"]:
            return self.status(
                422,
                "Invalid",
                f'Secret "{name}" is invalid: type: Invalid value: "{applied["type"]}":'
                " field is immutable",
                name=name,
                kind="Secret",
            )
        self.resource_version += 1
        stored = json.loads(json.dumps(applied))
        stored["metadata"].update(
            namespace=ns,
            uid=existing["metadata"]["uid"] if existing else str(uuid.uuid4()),
            resourceVersion=str(self.resource_version),
            creationTimestamp=(
                existing["metadata"]["creationTimestamp"]
                if existing
                else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            managedFields=[{"manager": "certforge", "operation": "Apply", "apiVersion": "v1"}],
        )
        self.secrets[(ns, name)] = stored
        return web.json_response(stored, status=200 if existing else 201)

    @staticmethod
    def check_secret(applied: Any, ns: str, name: str) -> str | None:
        if not isinstance(applied, dict):
            return "body is not an object"
        if applied.get("apiVersion") != "v1" or applied.get("kind") != "Secret":
            return f"apiVersion/kind {applied.get('apiVersion')}/{applied.get('kind')}"
        metadata = applied.get("metadata") or {}
        if metadata.get("name") != name or metadata.get("namespace", ns) != ns:
            return f"metadata names {metadata.get('namespace')}/{metadata.get('name')}"
        if applied.get("type") != "kubernetes.io/tls":
            return f"type {applied.get('type')!r}"
        data = applied.get("data")
        if not isinstance(data, dict) or not {"tls.crt", "tls.key"} <= set(data) <= TLS_KEYS:
            return f"data keys {sorted(data or {})}"
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except (ValueError, TypeError):
                return f"data[{key}] is not base64"
        if "stringData" in applied:
            return "stringData sent"
        return None

    async def delete_secret(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        if request.query or await request.read():
            return self.violation(f"delete with query/body {dict(request.query)}")
        if "delete" not in request[VERBS]:
            return self.forbidden(request, "delete", ns, name)
        stored = self.secrets.pop((ns, name), None)
        if stored is None:
            return self.status(404, "NotFound", f'secrets "{name}" not found', name=name)
        return self.status(200, "", "", name=name, kind="secrets", uid=stored["metadata"]["uid"])

    async def access_review(self, request: web.Request) -> web.Response:
        review = json.loads(await request.read())
        attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
        if (
            review.get("apiVersion") != "authorization.k8s.io/v1"
            or review.get("kind") != "SelfSubjectAccessReview"
            or attributes.get("resource") != "secrets"
            or attributes.get("namespace") not in self.namespaces
            or attributes.get("group", "") != ""
        ):
            return self.violation(f"access review {review}")
        allowed = attributes.get("verb") in request[VERBS]
        review["status"] = {"allowed": allowed}
        if not allowed:
            review["status"]["reason"] = "no RBAC policy matched"
        review["metadata"] = {"creationTimestamp": None}
        return web.json_response(review, status=201)

    async def unknown(self, request: web.Request) -> web.Response:
        return self.violation(f"unexpected {request.method} {request.path}")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        secret = "/api/v1/namespaces/{ns}/secrets/{name}"
        app.router.add_patch(secret, self.apply_secret)
        app.router.add_delete(secret, self.delete_secret)
        app.router.add_post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", self.access_review
        )
        app.router.add_route("*", "/{tail:.*}", self.unknown)
        return app


@pytest.fixture(scope="module")
def tls_files() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="cf-fake-k8s-", dir="/tmp"))
    cert_pem, key_pem = server_certificate("127.0.0.1")
    (directory / "server.pem").write_text(cert_pem + sync_ca().issuing_pem)
    (directory / "server.key").write_text(key_pem)
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fake_server(tls_files: Path) -> AsyncIterator[FakeKubernetes]:
    fake = FakeKubernetes()
    await asyncio.to_thread(KubernetesTlsSecret.warm_up)  # as the syncer does at startup
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files / "server.pem", tls_files / "server.key")
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    fake.port = int(runner.addresses[0][1])
    fake.url = f"https://127.0.0.1:{fake.port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
def fake(fake_server: FakeKubernetes) -> Iterator[FakeKubernetes]:
    fake_server.reset()
    yield fake_server
    assert fake_server.violations == []


def settings(fake: FakeKubernetes, **overrides: Any) -> KubernetesTlsSettings:
    return KubernetesTlsSettings.model_validate(
        {
            "namespace": "certs",
            "api_server": fake.url,
            "ca_pem": sync_ca().root_pem,
            "labels": {"team": "payments"},
            "annotations": {"example.com/owner": "payments@example.com"},
            "timeout_seconds": 5,
            **overrides,
        }
    )


@pytest_asyncio.fixture(loop_scope="session")
async def dest(fake: FakeKubernetes) -> AsyncIterator[KubernetesTlsSecret]:
    destination = KubernetesTlsSecret(
        settings(fake), KubernetesTlsCredentials(token="good-token"), development=False
    )
    assert not destination.uses_ambient_credentials()
    yield destination
    await destination.close()


def _name() -> str:
    return f"web-{uuid.uuid4().hex[:8]}.example.com"


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _assert_secret(secret: dict[str, Any], item: SyncItem, ca_crt: str | None) -> None:
    expected = {"tls.crt": item.certificate_pem + item.chain_pem, "tls.key": item.private_key_pem}
    if ca_crt is not None:
        expected["ca.crt"] = ca_crt
    assert _decoded(secret) == expected
    assert secret["type"] == "kubernetes.io/tls"
    metadata = secret["metadata"]
    assert metadata["labels"] == {"team": "payments", "app.kubernetes.io/managed-by": "certforge"}
    assert metadata["annotations"] == {
        "example.com/owner": "payments@example.com",
        "certforge.io/certificate-id": str(item.certificate_id),
        "certforge.io/lineage-id": str(item.lineage_id),
        "certforge.io/serial-number": item.serial_number,
        "certforge.io/not-after": item.not_after.isoformat(),
    }


# -- push -------------------------------------------------------------------------------------


async def test_push_is_one_server_side_apply_of_a_full_tls_secret(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    item = sync_item(_name())

    external_id = await dest.push(item)

    assert external_id == f"certs/{item.name}"
    [seen] = fake.requests
    assert seen.method == "PATCH"
    assert seen.path == f"/api/v1/namespaces/certs/secrets/{item.name}"
    assert seen.query == {"fieldManager": ["certforge"], "force": ["true"]}
    assert seen.headers["Content-Type"] == "application/apply-patch+yaml"
    assert seen.headers["Authorization"] == "Bearer good-token"
    sent = yaml.safe_load(seen.body)
    assert sent["apiVersion"] == "v1"
    assert sent["kind"] == "Secret"
    assert sent["metadata"]["name"] == item.name
    assert sent["metadata"]["namespace"] == "certs"
    assert set(sent["metadata"]) == {"name", "namespace", "labels", "annotations"}
    _assert_secret(sent, item, ca_crt=sync_ca().root_pem)  # the chain ends with the root
    _assert_secret(fake.secrets[("certs", item.name)], item, ca_crt=sync_ca().root_pem)


async def test_ca_crt_is_the_chain_without_a_root_and_absent_without_a_chain(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    no_root = sync_item(_name(), include_root=False)
    await dest.push(no_root)
    _assert_secret(fake.secrets[("certs", no_root.name)], no_root, ca_crt=sync_ca().issuing_pem)

    no_chain = sync_item(_name(), include_chain=False)
    await dest.push(no_chain)
    stored = fake.secrets[("certs", no_chain.name)]
    _assert_secret(stored, no_chain, ca_crt=None)
    assert _decoded(stored)["tls.crt"] == no_chain.certificate_pem


async def test_renewal_and_redelivery_replace_the_same_secret(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    first = sync_item(_name())
    external_id = await dest.push(first)
    uid = fake.secrets[("certs", first.name)]["metadata"]["uid"]
    version = int(fake.secrets[("certs", first.name)]["metadata"]["resourceVersion"])

    assert await dest.push(first) == external_id  # a redelivered event
    # renewal: new certificate and key; a name template with {certificate_id} would change
    # the name, but the external id keeps the Secret where it was
    renewed = sync_item("some-new-name", lineage_id=first.lineage_id, external_id=external_id)
    assert await dest.push(renewed) == external_id

    assert [s.method for s in fake.requests] == ["PATCH", "PATCH", "PATCH"]
    assert {s.path for s in fake.requests} == {f"/api/v1/namespaces/certs/secrets/{first.name}"}
    assert [k for k in fake.secrets if k[1] in {first.name, "some-new-name"}] == [
        ("certs", first.name)
    ]
    stored = fake.secrets[("certs", first.name)]
    _assert_secret(stored, renewed, ca_crt=sync_ca().root_pem)
    assert stored["metadata"]["uid"] == uid
    assert int(stored["metadata"]["resourceVersion"]) > version


async def test_settings_changes_reach_the_secret(fake: FakeKubernetes) -> None:
    item = sync_item(_name())
    before = KubernetesTlsSecret(
        settings(fake, labels={"team": "payments", "tier": "web"}),
        KubernetesTlsCredentials(token="good-token"),
        development=False,
    )
    await before.push(item)
    await before.close()
    after = KubernetesTlsSecret(
        settings(fake), KubernetesTlsCredentials(token="good-token"), development=False
    )
    await after.push(item)  # apply drops the label certforge no longer sends
    await after.close()
    _assert_secret(fake.secrets[("certs", item.name)], item, ca_crt=sync_ca().root_pem)


# -- remove -----------------------------------------------------------------------------------


async def test_remove_deletes_and_a_missing_secret_is_fine(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    item = sync_item(_name())
    external_id = await dest.push(item)

    await dest.remove(item, external_id)
    await dest.remove(item, external_id)

    assert ("certs", item.name) not in fake.secrets
    deletes = [s for s in fake.requests if s.method == "DELETE"]
    assert [(s.path, s.query, s.headers["Authorization"]) for s in deletes] == [
        (f"/api/v1/namespaces/certs/secrets/{item.name}", {}, "Bearer good-token")
    ] * 2


# -- refusals and failures --------------------------------------------------------------------


async def test_forbidden_and_unauthorized_are_permanent(fake: FakeKubernetes) -> None:
    for token, message in [
        ("readonly-token", '403 .*cannot create resource "secrets"'),
        ("no-such-token", "401 .*Unauthorized"),
    ]:
        destination = KubernetesTlsSecret(
            settings(fake), KubernetesTlsCredentials(token=token), development=False
        )
        try:
            with pytest.raises(PermanentSyncError, match=message) as refused:
                await destination.push(sync_item(_name()))
            assert token not in str(refused.value).replace(f"certforge:{token}", "")
            with pytest.raises(PermanentSyncError):
                await destination.remove(sync_item(_name()), "certs/anything")
        finally:
            await destination.close()


async def test_server_errors_and_throttling_are_transient(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    item = sync_item(_name())
    for status in (500, 503, 429):
        fake.fail_next.append(status)
        with pytest.raises(TransientSyncError, match=f"answered {status}"):
            await dest.push(item)
    fake.fail_next.append(500)
    with pytest.raises(TransientSyncError):
        await dest.remove(item, f"certs/{item.name}")
    assert len(fake.requests) == 4  # one request each: no retries inside the client

    await dest.push(item)  # the server is back
    _assert_secret(fake.secrets[("certs", item.name)], item, ca_crt=sync_ca().root_pem)


async def test_garbage_answer_is_transient(fake: FakeKubernetes, dest: KubernetesTlsSecret) -> None:
    fake.fail_next.append("garbage")
    with pytest.raises(TransientSyncError, match="not understood"):
        await dest.push(sync_item(_name()))


async def test_hanging_server_is_transient_after_the_timeout(fake: FakeKubernetes) -> None:
    destination = KubernetesTlsSecret(
        settings(fake, timeout_seconds=0.5),
        KubernetesTlsCredentials(token="good-token"),
        development=False,
    )
    fake.hang = True
    try:
        for call in (
            lambda: destination.push(sync_item(_name())),
            lambda: destination.remove(sync_item(_name()), "certs/x"),
            destination.check,
        ):
            started = time.monotonic()
            with pytest.raises(TransientSyncError, match="did not answer in time"):
                await call()
            assert 0.4 <= time.monotonic() - started < 3
        assert len(fake.requests) == 3  # no retries inside the client
    finally:
        await destination.close()


async def test_silent_and_closed_ports_are_transient() -> None:
    silent = await SilentServer().start()
    try:
        for port, message in [(silent.port, "did not answer in time"), (closed_port(), "reach")]:
            destination = KubernetesTlsSecret(
                KubernetesTlsSettings(
                    namespace="certs", api_server=f"https://127.0.0.1:{port}", timeout_seconds=0.5
                ),
                KubernetesTlsCredentials(token="good-token"),
                development=False,
            )
            started = time.monotonic()
            with pytest.raises(TransientSyncError, match=message):
                await destination.push(sync_item(_name()))
            assert time.monotonic() - started < 3
            await destination.close()
    finally:
        await silent.stop()


async def test_invalid_names_and_a_missing_key_are_permanent_without_a_request(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    for name in ["Upper.example.com", "under_score", "-lead", "a" * 254, "a..b", ""]:
        with pytest.raises(PermanentSyncError, match="not a valid Secret name"):
            await dest.push(sync_item(name))
    with pytest.raises(PermanentSyncError, match="needs the private key"):
        await dest.push(sync_item(_name(), with_key=False))
    with pytest.raises(PermanentSyncError, match="not a namespace/name"):
        await dest.remove(sync_item(_name()), "no-slash")
    assert fake.requests == []


async def test_missing_namespace_and_immutable_type_are_permanent(fake: FakeKubernetes) -> None:
    elsewhere = KubernetesTlsSecret(
        settings(fake, namespace="missing"),
        KubernetesTlsCredentials(token="good-token"),
        development=False,
    )
    with pytest.raises(PermanentSyncError, match=r'404.*namespaces "missing" not found'):
        await elsewhere.push(sync_item(_name()))
    await elsewhere.close()

    name = _name()
    fake.secrets[("certs", name)] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": "certs", "uid": "u", "creationTimestamp": None},
        "data": {},
    }
    destination = KubernetesTlsSecret(
        settings(fake), KubernetesTlsCredentials(token="good-token"), development=False
    )
    with pytest.raises(PermanentSyncError, match=r"422.*field is immutable"):
        await destination.push(sync_item(name))
    await destination.close()


async def test_untrusted_server_certificate_is_permanent(fake: FakeKubernetes) -> None:
    now = datetime.now(UTC)
    other_ca = build_self_signed_ca(
        SubjectFields(common_name="Some Other CA"),
        generate_private_key(KeyAlgorithm.EC_P256),
        now,
        now + timedelta(days=1),
        None,
        None,
    )
    destination = KubernetesTlsSecret(
        settings(fake, ca_pem=certificate_to_pem(other_ca)),
        KubernetesTlsCredentials(token="good-token"),
        development=False,
    )
    try:
        with pytest.raises(PermanentSyncError, match="TLS"):
            await destination.push(sync_item(_name()))
    finally:
        await destination.close()
    assert fake.requests == []


# -- other credentials ------------------------------------------------------------------------


def _kubeconfig(fake: FakeKubernetes, **user: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fake",
                    "cluster": {
                        "server": fake.url,
                        "certificate-authority-data": base64.b64encode(
                            sync_ca().root_pem.encode()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": "syncer", "user": user or {"token": "kubeconfig-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "syncer"}}],
            "current-context": "fake",
        }
    )


async def test_kubeconfig_credentials(fake: FakeKubernetes) -> None:
    destination = KubernetesTlsSecret(
        KubernetesTlsSettings(namespace="certs"),  # server and CA come from the kubeconfig
        KubernetesTlsCredentials(kubeconfig=_kubeconfig(fake)),
        development=False,
    )
    assert not destination.uses_ambient_credentials()
    try:
        await destination.check()
        item = sync_item(_name())
        assert await destination.push(item) == f"certs/{item.name}"
        await destination.remove(item, f"certs/{item.name}")
    finally:
        await destination.close()
    assert {s.headers["Authorization"] for s in fake.requests} == {"Bearer kubeconfig-token"}
    assert [s.method for s in fake.requests] == ["POST", "POST", "PATCH", "DELETE"]


async def test_in_cluster_service_account(
    fake: FakeKubernetes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text(sync_ca().root_pem)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
    destination = KubernetesTlsSecret(
        KubernetesTlsSettings(namespace="certs"), KubernetesTlsCredentials(), development=False
    )
    assert destination.uses_ambient_credentials()  # the api allows it only when enabled
    try:
        await destination.push(sync_item(_name()))
    finally:
        await destination.close()
    [seen] = fake.requests
    assert seen.headers["Authorization"] == "bearer sa-token"  # as the client's loader sends it

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    outside = KubernetesTlsSecret(
        KubernetesTlsSettings(namespace="certs"), KubernetesTlsCredentials(), development=False
    )
    with pytest.raises(PermanentSyncError, match="configuration"):
        await outside.push(sync_item(_name()))
    await outside.close()


# -- check ------------------------------------------------------------------------------------


async def test_check_asks_self_subject_access_reviews(
    fake: FakeKubernetes, dest: KubernetesTlsSecret
) -> None:
    await dest.check()

    reviews = [json.loads(s.body) for s in fake.requests]
    assert [s.path for s in fake.requests] == [
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    ] * 2
    assert [r["spec"]["resourceAttributes"] for r in reviews] == [
        {"namespace": "certs", "verb": verb, "resource": "secrets"} for verb in ("create", "patch")
    ]
    assert fake.secrets.get(("certs", "certforge-check")) is None


async def test_check_fails_when_not_allowed_or_not_authenticated(fake: FakeKubernetes) -> None:
    for token, message in [
        ("patch-only-token", "may not create Secrets in namespace certs: no RBAC policy"),
        ("readonly-token", "may not create"),
        ("no-such-token", "401"),
    ]:
        destination = KubernetesTlsSecret(
            settings(fake), KubernetesTlsCredentials(token=token), development=False
        )
        try:
            with pytest.raises(PermanentSyncError, match=message):
                await destination.check()
        finally:
            await destination.close()


# -- settings and credentials -----------------------------------------------------------------


async def test_deployment_dependent_checks() -> None:
    token = KubernetesTlsCredentials(token="t")
    for fields, message in [
        ({"api_server": "http://k8s.example.com"}, "https is required"),
        ({"api_server": "https://k8s.example.com", "insecure_skip_tls_verify": True}, "insecure"),
    ]:
        values = KubernetesTlsSettings.model_validate({"namespace": "certs", **fields})
        with pytest.raises(PermanentSyncError, match=message):
            KubernetesTlsSecret(values, token, development=False)
        KubernetesTlsSecret.validate_for(values, token, development=True)
    with pytest.raises(PermanentSyncError, match="needs a token or a kubeconfig"):
        KubernetesTlsSecret.validate_for(
            KubernetesTlsSettings(namespace="certs", api_server="https://k8s.example.com"),
            KubernetesTlsCredentials(),
            development=True,
        )
    plain = FakeKubernetes(url="http://127.0.0.1:1")
    insecure = yaml.safe_load(_kubeconfig(FakeKubernetes(url="https://127.0.0.1:1")))
    insecure["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    for kubeconfig, message in [
        (_kubeconfig(plain), "must be https"),
        (yaml.safe_dump(insecure), "insecure-skip-tls-verify"),
    ]:
        credentials = KubernetesTlsCredentials(kubeconfig=kubeconfig)
        with pytest.raises(PermanentSyncError, match=message):
            KubernetesTlsSecret.validate_for(
                KubernetesTlsSettings(namespace="certs"), credentials, development=False
            )


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"command": "/bin/sh", "args": ["-c", "id"], "apiVersion": "v1"}},
        {"auth-provider": {"name": "gcp", "config": {"cmd-path": "/bin/sh"}}},
        {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
        {"client-certificate": "/etc/ssl/private/cert.pem", "client-key": "/etc/ssl/key.pem"},
    ],
)
async def test_kubeconfigs_that_run_commands_or_read_files_are_refused(
    user: dict[str, Any],
) -> None:
    kubeconfig = _kubeconfig(FakeKubernetes(url="https://127.0.0.1:1"), **user)
    with pytest.raises(ValidationError, match="not accepted") as refused:
        KubernetesTlsCredentials(kubeconfig=kubeconfig)
    assert "/bin/sh" not in str(refused.value)
    assert "/bin/sh" not in refused.value.json(include_input=False)


async def test_a_kubeconfig_with_a_ca_file_is_refused() -> None:
    document = yaml.safe_load(_kubeconfig(FakeKubernetes(url="https://127.0.0.1:1")))
    document["clusters"][0]["cluster"]["certificate-authority"] = "/etc/ssl/ca.pem"
    with pytest.raises(ValidationError, match="not accepted"):
        KubernetesTlsCredentials(kubeconfig=yaml.safe_dump(document))
    for text in ["[unclosed", "just a string", "{}"]:
        with pytest.raises(ValidationError):
            KubernetesTlsCredentials(kubeconfig=text)
    with pytest.raises(ValidationError, match="not both"):
        KubernetesTlsCredentials(token="t", kubeconfig=_kubeconfig(FakeKubernetes()))


@pytest.mark.parametrize(
    "fields",
    [
        {"namespace": "Certs"},
        {"namespace": "a" * 64},
        {"namespace": "certs", "labels": {"bad key!": "x"}},
        {"namespace": "certs", "labels": {"team": "not valid!"}},
        {"namespace": "certs", "labels": {"app.kubernetes.io/managed-by": "someone"}},
        {"namespace": "certs", "annotations": {"certforge.io/lineage-id": "x"}},
        {"namespace": "certs", "ca_pem": "nope"},
        {"namespace": "certs", "timeout_seconds": -1},
        {"namespace": "certs", "colour": "blue"},
    ],
)
async def test_bad_settings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KubernetesTlsSettings.model_validate(fields)
