"""The Azure Key Vault destination (`azure-keyvault`) against a FAKE of Azure, not Azure.

Nothing of Azure is reachable from here, so these tests run the real SDK
(`azure-keyvault-certificates`, `azure-identity`/MSAL, azure-core over `requests`) against a
fake of the two REST APIs it talks to, served over TLS by aiohttp in a background thread:

- Microsoft Entra ID (the authority): `GET /{tenant}/v2.0/.well-known/openid-configuration`
  and `POST /{tenant}/oauth2/v2.0/token` (client-credentials grant). It checks the client id,
  the client secret and the scope, and issues a random bearer token.
- Key Vault: `POST /certificates/{name}/import`, `GET /certificates/{name}[/{version}]`,
  `DELETE /certificates/{name}`, `GET|DELETE /deletedcertificates/{name}` and
  `GET /certificates?maxresults=1`, with Key Vault's challenge-based authentication: a request
  without the token it issued gets 401 and `WWW-Authenticate: Bearer authorization=
  "{authority}/{tenant}", resource="https://vault.fake-azure.test:{port}"` (Azure says
  `resource="https://vault.azure.net"`; the SDK requires the vault's `host:port` to end with
  `.` + the resource's, hence the port). It checks every request (Host,
  api-version, bearer token, JSON shape, that the PFX parses with `cryptography`, holds a key
  matching its leaf and no password) and keeps certificates as versions, deletions as
  soft deletions, as Key Vault does. Whatever it finds wrong lands in `fake.problems`, which
  every test requires to be empty.

The SDK refuses plain http for bearer tokens and checks that the challenge's resource is a
parent domain of the vault's host, so the fake serves names, not 127.0.0.1:
`certforge.vault.fake-azure.test` and `login.fake-azure.test`, resolved to 127.0.0.1 by a
patched `socket.getaddrinfo` that refuses every other name (nothing can leak to the real
Azure), with a server certificate from a test CA made with `certforge.common.crypto` and
trusted through `REQUESTS_CA_BUNDLE`. The authority host is unknown to MSAL, so the sync sets
`disable_instance_discovery` (otherwise MSAL asks login.microsoftonline.com about it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import pytest_asyncio
from aiohttp import web
from azure.keyvault.certificates._shared import http_challenge_cache
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import ValidationError

from certforge.common.crypto.certificates import (
    build_certificate,
    build_intermediate_ca,
    build_self_signed_ca,
    certificate_to_pem,
    key_identifier_of,
    new_serial,
)
from certforge.common.crypto.keys import PrivateKey, generate_private_key, private_key_to_pkcs8_pem
from certforge.common.destinations.azure_keyvault import (
    AzureKeyVaultCredentials,
    AzureKeyVaultSettings,
)
from certforge.common.domain import ExtendedKeyUsage, KeyAlgorithm, SanType, SubjectFields
from certforge.common.template import CertificateTemplate, San
from certforge.syncer.plugins import azure_keyvault
from certforge.syncer.plugins.azure_keyvault import AzureKeyVault
from certforge.syncer.plugins.base import PermanentSyncError, SyncItem, TransientSyncError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DOMAIN = "fake-azure.test"
LOGIN_HOST = f"login.{DOMAIN}"
VAULT_HOST = f"certforge.vault.{DOMAIN}"
FAKE_HOSTS = {LOGIN_HOST, VAULT_HOST}
TENANT = "6f1c2d3e-4a5b-4c6d-8e7f-901234567890"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
SECRET = "s3cr3t~" + "x" * 30


# -- certificates ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _leaf_template(
    alg: KeyAlgorithm, dns: list[str], *, server: bool = True, days: int = 30
) -> CertificateTemplate:
    now = _now()
    return CertificateTemplate(
        subject=SubjectFields(common_name=dns[0]),
        sans=[San(type=SanType.DNS, value=d) for d in dns],
        key_algorithm=alg,
        extended_key_usages=[ExtendedKeyUsage.SERVER_AUTH] if server else [],
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=days),
    )


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    root_key: PrivateKey
    issuing: x509.Certificate
    issuing_key: PrivateKey

    def leaf(
        self, alg: KeyAlgorithm = KeyAlgorithm.EC_P256, dns: str = "web.example.internal"
    ) -> tuple[x509.Certificate, PrivateKey]:
        key = generate_private_key(alg)
        cert = build_certificate(
            _leaf_template(alg, [dns]),
            key.public_key(),
            self.issuing.subject,
            self.issuing_key,
            key_identifier_of(self.issuing),
            new_serial(),
        )
        return cert, key


def _make_pki(name: str) -> Pki:
    now = _now()
    root_key = generate_private_key(KeyAlgorithm.EC_P256)
    root = build_self_signed_ca(
        SubjectFields(common_name=f"{name} Root"),
        root_key,
        now - timedelta(days=1),
        now + timedelta(days=365),
        None,
        None,
    )
    issuing_key = generate_private_key(KeyAlgorithm.EC_P256)
    issuing = build_intermediate_ca(
        SubjectFields(common_name=f"{name} Issuing"),
        issuing_key.public_key(),
        root,
        root_key,
        now - timedelta(days=1),
        now + timedelta(days=180),
        0,
        None,
    )
    return Pki(root, root_key, issuing, issuing_key)


def _item(
    pki: Pki,
    cert: x509.Certificate,
    key: PrivateKey | None,
    *,
    name: str = "web-example",
    lineage: uuid.UUID | None = None,
    external_id: str | None = None,
) -> SyncItem:
    return SyncItem(
        name=name,
        lineage_id=lineage or uuid.uuid4(),
        certificate_id=uuid.uuid4(),
        application="shop",
        profile="tls-server",
        common_name="web.example.internal",
        serial_number=format(cert.serial_number, "x"),
        not_after=cert.not_valid_after_utc,
        certificate_pem=certificate_to_pem(cert),
        chain_pem=certificate_to_pem(pki.issuing),
        private_key_pem=private_key_to_pkcs8_pem(key) if key is not None else None,
        external_id=external_id,
    )


# -- the fake ----------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: bytes

    @property
    def line(self) -> str:
        where = "login" if self.host.startswith(LOGIN_HOST) else "vault"
        auth = " +bearer" if self.authorization else ""
        return f"{self.method} {where} {self.path}{auth}"


@dataclass
class Version:
    version: str
    pfx: bytes
    key: Any
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    tags: dict[str, str] | None
    enabled: bool
    policy: dict[str, Any]
    created: int


@dataclass
class FakeAzure:
    """Entra ID + one Key Vault, on one TLS port; state resets per test."""

    port: int = 0
    token: str = ""
    requests: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    certificates: dict[str, list[Version]] = field(default_factory=dict)
    deleted: dict[str, list[Version]] = field(default_factory=dict)
    deleting: dict[str, int] = field(default_factory=dict)
    """Name → how many more `GET /deletedcertificates/{name}` answer 404 (deletion running)."""
    vault_status: int | None = None
    """Answer every vault request with this status (403 after authentication, 5xx before)."""
    hang_vault: bool = False
    vault_garbage: bool = False
    token_failure: tuple[int, str] | None = None
    """Answer token requests with this status and body (an Entra ID outage)."""
    challenge_tenant: str = TENANT
    challenge_resource: str | None = None
    """Answer authenticated vault requests with 200 and an HTML page."""
    release: asyncio.Event | None = None

    @property
    def authority(self) -> str:
        return f"https://{LOGIN_HOST}:{self.port}"

    @property
    def vault(self) -> str:
        return f"https://{VAULT_HOST}:{self.port}"

    @property
    def resource(self) -> str:
        return f"https://vault.{DOMAIN}:{self.port}"

    def reset(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self.requests.clear()
        self.problems.clear()
        self.certificates.clear()
        self.deleted.clear()
        self.deleting.clear()
        self.vault_status = None
        self.hang_vault = False
        self.vault_garbage = False
        self.token_failure = None
        self.challenge_tenant = TENANT
        self.challenge_resource = None

    def lines(self) -> list[str]:
        return [r.line for r in self.requests]

    # -- aiohttp plumbing --

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/certificates/{name}/import", self._import)
        app.router.add_get("/certificates", self._list)
        app.router.add_get("/certificates/{name}", self._get)
        app.router.add_get("/certificates/{name}/{version}", self._get)
        app.router.add_delete("/certificates/{name}", self._delete)
        app.router.add_get("/deletedcertificates/{name}", self._get_deleted)
        app.router.add_delete("/deletedcertificates/{name}", self._purge)
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(
            request.method,
            request.headers.get("Host", ""),
            request.path,
            parse_qs(request.query_string),
            request.headers.get("Authorization"),
            body,
        )
        self.requests.append(seen)
        if seen.host.startswith(VAULT_HOST):
            return await self._vault_gate(request, seen, handler)
        if seen.host != f"{LOGIN_HOST}:{self.port}":
            self.problems.append(f"unexpected Host {seen.host!r}")
            return web.json_response({"error": "unknown host"}, status=400)
        response: web.StreamResponse = await handler(request)
        return response

    async def _vault_gate(
        self, request: web.Request, seen: Seen, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if seen.host != f"{VAULT_HOST}:{self.port}":
            self.problems.append(f"unexpected vault Host {seen.host!r}")
        if not seen.query.get("api-version"):
            self.problems.append(f"{seen.method} {seen.path} without api-version")
        if self.hang_vault:
            assert self.release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), timeout=30)
            return _kv_error(503, "ServiceUnavailable", "released")
        if self.vault_status is not None and self.vault_status >= 500:
            return _kv_error(self.vault_status, "ServiceUnavailable", "The service is busy.")
        if seen.authorization != f"Bearer {self.token}":
            if seen.authorization is not None:
                self.problems.append(f"wrong Authorization on {seen.method} {seen.path}")
            elif seen.body:
                self.problems.append("unauthenticated request carried a body")
            return web.json_response(
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
                status=401,
                headers={"WWW-Authenticate": self._challenge()},
            )
        if self.vault_garbage:
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        if self.vault_status is not None:
            return _kv_error(
                self.vault_status,
                "Forbidden",
                f"The user, group or application 'appid={CLIENT_ID}' does not have certificates"
                " import permission on key vault 'certforge'.",
            )
        response: web.StreamResponse = await handler(request)
        return response

    def _challenge(self) -> str:
        authority = f"{self.authority}/{self.challenge_tenant}"
        resource = self.challenge_resource or self.resource
        return f'Bearer authorization="{authority}", resource="{resource}"'

    # -- Entra ID --

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant != TENANT:
            self.problems.append(f"discovery for tenant {tenant!r}")
        base = f"{self.authority}/{tenant}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{self.authority}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "response_types_supported": ["code", "id_token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        if self.token_failure is not None:
            status, text = self.token_failure
            return web.Response(status=status, text=text, content_type="application/json")
        if request.match_info["tenant"] != TENANT:
            self.problems.append("token request for another tenant")
        if form.get("grant_type") != ["client_credentials"]:
            self.problems.append(f"grant_type {form.get('grant_type')}")
        if form.get("scope") != [f"{self.resource}/.default"]:
            self.problems.append(f"scope {form.get('scope')}")
        if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [SECRET]:
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure"
                    " the secret being sent in the request is the client secret value.",
                    "error_codes": [7000215],
                },
                status=401,
            )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": self.token,
            }
        )

    # -- Key Vault --

    def _bundle(self, name: str, v: Version) -> dict[str, Any]:
        der = v.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "id": f"{self.vault}/certificates/{name}/{v.version}",
            "kid": f"{self.vault}/keys/{name}/{v.version}",
            "sid": f"{self.vault}/secrets/{name}/{v.version}",
            "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode().rstrip("="),
            "cer": base64.b64encode(der).decode(),
            "attributes": {
                "enabled": v.enabled,
                "nbf": int(v.certificate.not_valid_before_utc.timestamp()),
                "exp": int(v.certificate.not_valid_after_utc.timestamp()),
                "created": v.created,
                "updated": v.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "policy": {"id": f"{self.vault}/certificates/{name}/policy", **v.policy},
            "tags": v.tags,
        }

    async def _import(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = json.loads(await request.read())
        if name in self.deleted or name in self.deleting:
            return _kv_error(
                409,
                "Conflict",
                f"Certificate {name} is currently in a deleted but recoverable state, and its"
                " name cannot be reused; in this state, the certificate can only be recovered or"
                " purged.",
            )
        if body.get("pwd"):
            self.problems.append("import with a password")
        try:
            pfx = base64.b64decode(body["value"], validate=True)
            bundle = pkcs12.load_pkcs12(pfx, None)
        except (KeyError, ValueError) as exc:
            self.problems.append(f"import body does not hold a PFX: {exc}")
            return _kv_error(400, "BadParameter", "The specified PEM X.509 certificate is invalid.")
        if bundle.key is None or bundle.cert is None:
            self.problems.append("PFX without key or certificate")
            return _kv_error(400, "BadParameter", "Private key is not specified.")
        leaf = bundle.cert.certificate
        if bundle.key.public_key() != leaf.public_key():
            self.problems.append("PFX key does not match its certificate")
        policy = body.get("policy") or {}
        if policy.get("secret_props", {}).get("contentType") != "application/x-pkcs12":
            self.problems.append(f"policy content type {policy.get('secret_props')}")
        version = Version(
            version=uuid.uuid4().hex,
            pfx=pfx,
            key=bundle.key,
            certificate=leaf,
            chain=[c.certificate for c in bundle.additional_certs],
            tags=body.get("tags"),
            enabled=bool(body.get("attributes", {}).get("enabled", True)),
            policy=policy,
            created=int(time.time()),
        )
        self.certificates.setdefault(name, []).append(version)
        return web.json_response(self._bundle(name, version))

    async def _get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        versions = self.certificates.get(name)
        wanted = request.match_info.get("version")
        found = [v for v in versions or [] if wanted in (None, v.version)]
        if not found:
            return _not_found(name)
        return web.json_response(self._bundle(name, found[-1]))

    async def _list(self, request: web.Request) -> web.Response:
        top = int(request.query.get("maxresults", "25"))
        items = [
            {k: v for k, v in self._bundle(name, vs[-1]).items() if k in ("attributes", "tags")}
            | {"id": f"{self.vault}/certificates/{name}"}
            for name, vs in sorted(self.certificates.items())
        ]
        return web.json_response({"value": items[:top], "nextLink": None})

    async def _delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        versions = self.certificates.pop(name, None)
        if not versions:
            return _not_found(name)
        self.deleted[name] = versions
        self.deleting[name] = 1  # one poll sees 404 before the deletion completes
        return web.json_response(self._deleted_bundle(name, versions[-1]))

    def _deleted_bundle(self, name: str, v: Version) -> dict[str, Any]:
        now = int(time.time())
        return self._bundle(name, v) | {
            "recoveryId": f"{self.vault}/deletedcertificates/{name}",
            "deletedDate": now,
            "scheduledPurgeDate": now + 90 * 86400,
        }

    async def _get_deleted(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.deleting.get(name, 0) > 0:
            self.deleting[name] -= 1
            return _deleted_not_found(name)
        self.deleting.pop(name, None)
        if name not in self.deleted:
            return _deleted_not_found(name)
        return web.json_response(self._deleted_bundle(name, self.deleted[name][-1]))

    async def _purge(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.deleting.get(name):
            return _kv_error(409, "Conflict", f"Certificate {name} is currently being deleted.")
        if self.deleted.pop(name, None) is None:
            return _deleted_not_found(name)
        return web.Response(status=204)


def _kv_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _not_found(name: str) -> web.Response:
    return _kv_error(
        404,
        "CertificateNotFound",
        f"A certificate with (name/id) {name} was not found in this key vault.",
    )


def _deleted_not_found(name: str) -> web.Response:
    return _kv_error(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")


class FakeServer:
    """`FakeAzure` served with TLS by aiohttp on 127.0.0.1 in a thread with its own loop."""

    def __init__(self, fake: FakeAzure, ssl_context: ssl.SSLContext) -> None:
        self.fake = fake
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fake-azure", daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._stop())
        self._loop.close()

    async def _stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _start(self) -> None:
        self.fake.release = asyncio.Event()
        self._runner = web.AppRunner(self.fake.app(), shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        assert server.sockets  # type: ignore[attr-defined]
        self.fake.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the fake Azure did not start: {self._error!r}")

    def release_hanging(self) -> None:
        release = self.fake.release
        if release is not None:
            self._loop.call_soon_threadsafe(release.set)

    def reset_release(self) -> None:
        release = self.fake.release
        if release is not None:
            self._loop.call_soon_threadsafe(release.clear)

    def stop(self) -> None:
        self.release_hanging()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the fake Azure did not stop"


# -- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    server: FakeServer
    fake: FakeAzure
    ca_file: Path
    pki: Pki


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tls = _make_pki("Fake Azure TLS")
    server_key = generate_private_key(KeyAlgorithm.EC_P256)
    server_cert = build_certificate(
        _leaf_template(KeyAlgorithm.EC_P256, sorted(FAKE_HOSTS)),
        server_key.public_key(),
        tls.issuing.subject,
        tls.issuing_key,
        key_identifier_of(tls.issuing),
        new_serial(),
    )
    folder = tmp_path_factory.mktemp("fake-azure")
    (folder / "server.pem").write_text(
        certificate_to_pem(server_cert) + certificate_to_pem(tls.issuing)
    )
    (folder / "server.key").write_text(private_key_to_pkcs8_pem(server_key))
    ca_file = folder / "ca.pem"
    ca_file.write_text(certificate_to_pem(tls.root))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")

    fake = FakeAzure()
    fake.reset()
    server = FakeServer(fake, context)
    server.start()
    try:
        yield Env(server, fake, ca_file, _make_pki("Certforge Test"))
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fake(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    """A fresh fake, reachable by name, trusted, no proxy, no cached Key Vault challenge."""
    env.fake.reset()
    env.server.reset_release()
    http_challenge_cache.clear()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in FAKE_HOSTS:
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        if name in ("127.0.0.1", "localhost", "::1"):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"{name} is not resolvable in this test")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(env.ca_file))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setattr(azure_keyvault, "DELETE_POLL_SECONDS", 0.05)
    yield env.fake
    env.server.release_hanging()
    assert env.fake.problems == []


def _settings(fake: FakeAzure, **overrides: Any) -> AzureKeyVaultSettings:
    values: dict[str, Any] = {
        "vault_url": fake.vault,
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "authority_host": fake.authority,
        "disable_instance_discovery": True,
        "tags": {"owner": "shop", "managed-by": "certforge"},
        "timeout_seconds": 5,
    }
    return AzureKeyVaultSettings.model_validate(values | overrides)


def _plugin(fake: FakeAzure, secret: str = SECRET, **overrides: Any) -> AzureKeyVault:
    return AzureKeyVault(
        _settings(fake, **overrides),
        AzureKeyVaultCredentials.model_validate({"client_secret": secret}),
        development=False,
    )


@pytest_asyncio.fixture
async def plugin(fake: FakeAzure) -> AsyncIterator[AzureKeyVault]:
    made = _plugin(fake)
    yield made
    await made.close()


def _key_der(key: Any) -> bytes:
    der: bytes = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return der


FIRST_CONTACT = [
    "POST vault /certificates/web-example/import",
    f"GET login /{TENANT}/v2.0/.well-known/openid-configuration",
    f"POST login /{TENANT}/oauth2/v2.0/token",
    "POST vault /certificates/web-example/import +bearer",
]
"""What a fresh process sends for its first push: challenge, discovery, token, the import."""


# -- push --------------------------------------------------------------------------------------


async def test_push_imports_pfx_with_key_leaf_and_chain(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    cert, key = env.pki.leaf()
    external_id = await plugin.push(_item(env.pki, cert, key))

    assert external_id == f"{fake.vault}/certificates/web-example"
    assert fake.lines() == FIRST_CONTACT
    assert fake.requests[0].body == b""  # the challenge request goes without the body
    token_form = parse_qs(fake.requests[2].body.decode())
    assert token_form["client_secret"] == [SECRET]
    assert token_form["scope"] == [f"{fake.resource}/.default"]

    [stored] = fake.certificates["web-example"]
    assert stored.certificate == cert
    assert _key_der(stored.key) == _key_der(key)
    assert stored.chain == [env.pki.issuing]
    assert stored.tags == {"owner": "shop", "managed-by": "certforge"}
    assert stored.enabled is True
    assert stored.policy["key_props"] == {
        "exportable": True,
        "kty": "EC",
        "crv": "P-256",
        "reuse_key": False,
    }
    assert stored.policy["secret_props"] == {"contentType": "application/x-pkcs12"}
    body = json.loads(fake.requests[3].body)
    assert body["preserveCertOrder"] is True
    assert "pwd" not in body


async def test_rsa_key_policy_names_its_size(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    cert, key = env.pki.leaf(KeyAlgorithm.RSA_2048)
    await plugin.push(_item(env.pki, cert, key, name="rsa-1"))
    [stored] = fake.certificates["rsa-1"]
    assert stored.policy["key_props"]["kty"] == "RSA"
    assert stored.policy["key_props"]["key_size"] == 2048
    assert _key_der(stored.key) == _key_der(key)


async def test_repush_adds_a_version_of_the_same_certificate(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    lineage = uuid.uuid4()
    first_cert, first_key = env.pki.leaf()
    external_id = await plugin.push(_item(env.pki, first_cert, first_key, lineage=lineage))
    renewed_cert, renewed_key = env.pki.leaf()
    renewed = _item(env.pki, renewed_cert, renewed_key, lineage=lineage, external_id=external_id)
    fake.requests.clear()

    assert await plugin.push(renewed) == external_id
    assert await plugin.push(renewed) == external_id  # a redelivered event

    # Challenge and token are cached: each push is one authenticated import.
    assert fake.lines() == ["POST vault /certificates/web-example/import +bearer"] * 2
    assert list(fake.certificates) == ["web-example"]
    versions = fake.certificates["web-example"]
    assert [v.certificate for v in versions] == [first_cert, renewed_cert, renewed_cert]
    assert len({v.version for v in versions}) == 3
    assert _key_der(versions[-1].key) == _key_der(renewed_key)


async def test_push_replaces_the_certificate_its_external_id_names(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    cert, key = env.pki.leaf()
    external_id = await plugin.push(_item(env.pki, cert, key, name="old-name"))
    # The sync's name template changed since: the lineage's certificate is still replaced.
    renewed_cert, renewed_key = env.pki.leaf()
    renewed = _item(env.pki, renewed_cert, renewed_key, name="new-name", external_id=external_id)
    assert await plugin.push(renewed) == external_id
    assert [v.certificate for v in fake.certificates["old-name"]] == [cert, renewed_cert]
    # An id of another vault (the sync moved) or of another kind: a new certificate here.
    for foreign in ("https://other.vault.azure.net/certificates/old-name", "arn:aws:acm:x"):
        moved = _item(env.pki, cert, key, name="new-name", external_id=foreign)
        assert await plugin.push(moved) == f"{fake.vault}/certificates/new-name"
    assert sorted(fake.certificates) == ["new-name", "old-name"]


async def test_managed_identity_is_built_without_a_secret(fake: FakeAzure) -> None:
    plugin = AzureKeyVault(
        _settings(fake),
        AzureKeyVaultCredentials.model_validate({"use_managed_identity": True}),
        development=False,
    )
    assert type(plugin._credential).__name__ == "ManagedIdentityCredential"
    await plugin.close()
    assert fake.requests == []


async def test_a_second_client_reuses_the_cached_challenge(fake: FakeAzure, env: Env) -> None:
    cert, key = env.pki.leaf()
    first, second = _plugin(fake), _plugin(fake)
    try:
        await first.push(_item(env.pki, cert, key))
        fake.requests.clear()
        await second.push(_item(env.pki, cert, key))
    finally:
        await first.close()
        await second.close()
    # The challenge is cached per vault host for the process; the token per credential.
    assert fake.lines() == FIRST_CONTACT[1:]


@pytest.mark.parametrize("name", ["web_example", "web.example", "", "x" * 128, "ä"])
async def test_invalid_name_is_permanent_without_a_request(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env, name: str
) -> None:
    cert, key = env.pki.leaf()
    with pytest.raises(PermanentSyncError, match="not a valid Key Vault certificate name"):
        await plugin.push(_item(env.pki, cert, key, name=name))
    assert fake.requests == []


async def test_certificate_without_key_or_with_ed25519_is_permanent(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    cert, _ = env.pki.leaf()
    with pytest.raises(PermanentSyncError, match="private key"):
        await plugin.push(_item(env.pki, cert, None))
    ed_cert, ed_key = env.pki.leaf(KeyAlgorithm.ED25519)
    with pytest.raises(PermanentSyncError, match="RSA or EC"):
        await plugin.push(_item(env.pki, ed_cert, ed_key))
    _, other_key = env.pki.leaf()
    with pytest.raises(PermanentSyncError, match="does not belong"):
        await plugin.push(_item(env.pki, cert, other_key))
    assert fake.requests == []


# -- remove ------------------------------------------------------------------------------------


async def test_remove_deletes_and_a_missing_certificate_is_fine(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    cert, key = env.pki.leaf()
    item = _item(env.pki, cert, key)
    external_id = await plugin.push(item)
    fake.requests.clear()

    await plugin.remove(item, external_id)
    assert fake.lines() == ["DELETE vault /certificates/web-example +bearer"]
    assert "web-example" not in fake.certificates
    assert "web-example" in fake.deleted  # soft-deleted, recoverable

    await plugin.remove(item, external_id)  # gone already: fine

    # Without purge the name stays taken until the deleted certificate is purged.
    with pytest.raises(PermanentSyncError, match="a deleted certificate with this name awaits"):
        await plugin.push(item)


async def test_remove_with_purge_frees_the_name(fake: FakeAzure, env: Env) -> None:
    plugin = _plugin(fake, purge_on_remove=True)
    try:
        cert, key = env.pki.leaf()
        item = _item(env.pki, cert, key)
        external_id = await plugin.push(item)
        fake.requests.clear()

        await plugin.remove(item, external_id)
        assert fake.lines() == [
            "DELETE vault /certificates/web-example +bearer",
            "GET vault /deletedcertificates/web-example +bearer",  # 404: still deleting
            "GET vault /deletedcertificates/web-example +bearer",  # 200: deleted
            "DELETE vault /deletedcertificates/web-example +bearer",  # purge
        ]
        assert fake.certificates == {}
        assert fake.deleted == {}

        await plugin.remove(item, external_id)  # nothing left: fine
        assert await plugin.push(item) == external_id
        assert len(fake.certificates["web-example"]) == 1
    finally:
        await plugin.close()


async def test_remove_refuses_an_id_of_another_vault(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    cert, key = env.pki.leaf()
    item = _item(env.pki, cert, key)
    with pytest.raises(PermanentSyncError, match="not in the configured"):
        await plugin.remove(item, "https://other.vault.azure.net/certificates/web-example")
    with pytest.raises(PermanentSyncError, match="not a Key Vault certificate id"):
        await plugin.remove(item, "arn:aws:acm:eu-west-1:123:certificate/x")
    assert fake.requests == []


# -- failures ----------------------------------------------------------------------------------


async def test_bad_client_secret_is_permanent_and_not_echoed(fake: FakeAzure, env: Env) -> None:
    wrong = "wrong-secret-" + secrets.token_hex(8)
    plugin = _plugin(fake, secret=wrong)
    try:
        cert, key = env.pki.leaf()
        with pytest.raises(PermanentSyncError, match="credentials were refused") as caught:
            await plugin.push(_item(env.pki, cert, key))
        with pytest.raises(PermanentSyncError, match="credentials were refused"):
            await plugin.check()
    finally:
        await plugin.close()
    assert "AADSTS7000215" in str(caught.value)
    assert wrong not in str(caught.value)
    assert fake.certificates == {}
    assert not any(r.authorization for r in fake.requests if r.host.startswith(VAULT_HOST))


async def test_unreachable_token_endpoint_is_transient(fake: FakeAzure, env: Env) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    plugin = _plugin(fake, authority_host=f"https://{LOGIN_HOST}:{closed_port}")
    try:
        cert, key = env.pki.leaf()
        with pytest.raises(TransientSyncError, match="could not reach Microsoft Entra ID"):
            await plugin.push(_item(env.pki, cert, key))
    finally:
        await plugin.close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, '{"error": "temporarily_unavailable", "error_description": "AADSTS90033: busy"}'),
        (503, "<html>Service Unavailable</html>"),
        (500, '{"error": "server_error"}'),
        (429, "{}"),
    ],
)
async def test_entra_id_outage_is_transient(
    fake: FakeAzure, env: Env, status: int, body: str
) -> None:
    fake.token_failure = (status, body)
    plugin = _plugin(fake)
    try:
        cert, key = env.pki.leaf()
        with pytest.raises(TransientSyncError, match=rf"Microsoft Entra ID failed \({status}\)"):
            await plugin.push(_item(env.pki, cert, key))
    finally:
        await plugin.close()
    assert fake.certificates == {}


async def test_vault_of_another_tenant_or_cloud_is_permanent(fake: FakeAzure, env: Env) -> None:
    cert, key = env.pki.leaf()
    fake.challenge_tenant = "11111111-2222-4333-8444-555555555555"
    plugin = _plugin(fake)
    try:
        with pytest.raises(PermanentSyncError, match="not configured to acquire tokens for tenant"):
            await plugin.push(_item(env.pki, cert, key))
    finally:
        await plugin.close()
    # A challenge for a resource the vault's host is not under (not this cloud's Key Vault).
    http_challenge_cache.clear()
    fake.challenge_tenant, fake.challenge_resource = TENANT, "https://vault.azure.net"
    plugin = _plugin(fake)
    try:
        with pytest.raises(PermanentSyncError, match="does not match the requested domain"):
            await plugin.push(_item(env.pki, cert, key))
    finally:
        await plugin.close()
    assert fake.certificates == {}
    assert not any(r.authorization for r in fake.requests)


async def test_vault_403_is_permanent(plugin: AzureKeyVault, fake: FakeAzure, env: Env) -> None:
    fake.vault_status = 403
    cert, key = env.pki.leaf()
    with pytest.raises(PermanentSyncError, match=r"access denied.*does not have certificates"):
        await plugin.push(_item(env.pki, cert, key))
    assert fake.lines() == FIRST_CONTACT  # refused after authenticating, not retried


async def test_vault_503_is_transient(plugin: AzureKeyVault, fake: FakeAzure, env: Env) -> None:
    fake.vault_status = 503
    cert, key = env.pki.leaf()
    with pytest.raises(TransientSyncError, match=r"failed \(503\).*The service is busy"):
        await plugin.push(_item(env.pki, cert, key))
    with pytest.raises(TransientSyncError, match=r"\(503\)"):
        await plugin.check()
    # One SDK retry per call, then the syncer's own backoff takes over.
    assert (
        fake.lines()
        == ["POST vault /certificates/web-example/import"] * 2 + ["GET vault /certificates"] * 2
    )

    fake.vault_status = None  # back: the next attempt succeeds
    assert await plugin.push(_item(env.pki, cert, key)) == f"{fake.vault}/certificates/web-example"


async def test_hanging_vault_is_transient_within_the_timeout(fake: FakeAzure, env: Env) -> None:
    fake.hang_vault = True
    plugin = _plugin(fake, timeout_seconds=1)
    try:
        cert, key = env.pki.leaf()
        started = time.monotonic()
        with pytest.raises(TransientSyncError, match="unreachable or timed out"):
            await plugin.push(_item(env.pki, cert, key))
        push_seconds = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(TransientSyncError, match="unreachable or timed out"):
            await plugin.check()
        check_seconds = time.monotonic() - started
    finally:
        await plugin.close()
    # Read timeout 1 s; azure-core does not resend a POST whose answer timed out (it may have
    # been applied), and resends a GET once.
    assert push_seconds < 3, push_seconds
    assert check_seconds < 5, check_seconds
    assert (
        fake.lines()
        == ["POST vault /certificates/web-example/import"] + ["GET vault /certificates"] * 2
    )


async def test_garbage_from_the_vault_is_transient(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    fake.vault_garbage = True  # e.g. a captive proxy answering 200 with HTML
    cert, key = env.pki.leaf()
    with pytest.raises(TransientSyncError, match="not Key Vault JSON"):
        await plugin.push(_item(env.pki, cert, key))


# -- check -------------------------------------------------------------------------------------


async def test_check_lists_one_certificate_without_writing(
    plugin: AzureKeyVault, fake: FakeAzure, env: Env
) -> None:
    await plugin.check()  # an empty vault is fine
    assert fake.lines() == [
        "GET vault /certificates",
        f"GET login /{TENANT}/v2.0/.well-known/openid-configuration",
        f"POST login /{TENANT}/oauth2/v2.0/token",
        "GET vault /certificates +bearer",
    ]
    assert fake.requests[-1].query["maxresults"] == ["1"]
    assert fake.certificates == {}

    fake.vault_status = 403
    with pytest.raises(PermanentSyncError, match="access denied"):
        await plugin.check()


# -- settings ----------------------------------------------------------------------------------


def test_settings_and_credentials_are_validated() -> None:
    good = {"vault_url": "https://v.vault.azure.net", "tenant_id": TENANT, "client_id": CLIENT_ID}
    settings = AzureKeyVaultSettings.model_validate(good)
    assert settings.vault_origin == "https://v.vault.azure.net"
    assert settings.authority is None
    assert settings.timeout_seconds == 10
    for bad in (
        {"vault_url": "http://v.vault.azure.net"},
        {"vault_url": "https://v.vault.azure.net/certificates"},
        {"authority_host": "http://login.microsoftonline.us"},
        {"client_id": "not-a-guid"},
        {"tags": {f"t{i}": "v" for i in range(16)}},
        {"tags": {"t": "v" * 257}},
        {"timeout_seconds": 0},
        {"region": "westeurope"},
    ):
        with pytest.raises(ValidationError):
            AzureKeyVaultSettings.model_validate(good | bad)
    assert AzureKeyVaultSettings.model_validate(good | {"tags": {f"t{i}": "v" for i in range(15)}})

    AzureKeyVaultCredentials.model_validate({"client_secret": "x"})
    AzureKeyVaultCredentials.model_validate({"use_managed_identity": True})
    for bad_credentials in (
        {},
        {"client_secret": ""},
        {"client_secret": "x", "use_managed_identity": True},
        {"client_secret": "x", "password": "y"},
    ):
        with pytest.raises(ValidationError):
            AzureKeyVaultCredentials.model_validate(bad_credentials)
    assert "x" not in repr(AzureKeyVaultCredentials.model_validate({"client_secret": "xyz"}))
    assert AzureKeyVault.kind == "azure-keyvault"
    assert AzureKeyVault.needs_private_key
