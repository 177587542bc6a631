"""Kubernetes TLS Secret (`kubernetes.io/tls`) per certificate lineage (kind `kubernetes-tls`).

The Secret `{namespace}/{name}` holds `tls.crt` (leaf + chain), `tls.key` and `ca.crt` (the
root when the chain includes it, else the chain), with the label
`app.kubernetes.io/managed-by: certforge` and `certforge.io/*` annotations naming the
certificate. It is written with SERVER-SIDE APPLY (field manager `certforge`, `force=true`):
one idempotent request creates or replaces it, a renewal updates it in place (same Secret, so
Ingresses and pods that mount it pick up the new certificate), and labels, annotations or keys
Certforge stops sending are dropped while fields other managers own are left alone.

Connection, by credentials:
- `token` with `api_server`: a bearer token (e.g. a service account token) for that server.
- `kubeconfig`: inline YAML; only data fields are accepted (`token`, `client-certificate-data`,
  `client-key-data`, `certificate-authority-data`, ...). Entries that run a command (`exec`,
  `auth-provider`) or read a file of the syncer's host (`tokenFile`, `certificate-authority`,
  `client-certificate`, `client-key`) are refused: the kubeconfig comes from an application
  admin. `api_server` and `ca_pem`, when set, override the kubeconfig's.
- neither, without `api_server`: in-cluster, as the syncer pod's service account (`token`,
  when given, replaces that account's token).

Development mode: outside it, the API server must be https and `insecure_skip_tls_verify` (or
a kubeconfig's `insecure-skip-tls-verify`) is refused. `KubernetesTlsSecret.validate_for`
checks this (the core calls it when a sync is created, for a 422); `__init__` checks it again.

The official client is blocking, so every call runs in a thread, with `timeout_seconds` as the
total time of each request and no retries inside the client (the syncer core retries).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import urllib3
import yaml  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as _k8s_client
from kubernetes import config as _k8s_config
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncError,
    SyncItem,
    TransientSyncError,
    check_ca_pem,
)

k8s: Any = _k8s_client
"""The official client, partly typed (its `config` loaders are not): used as `Any` here."""
k8s_config: Any = _k8s_config

FIELD_MANAGER = "certforge"
MANAGED_BY = ("app.kubernetes.io/managed-by", "certforge")
ANNOTATION_PREFIX = "certforge.io/"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MESSAGE_LIMIT = 300

_KUBECONFIG_CLUSTER_KEYS = frozenset(
    {"server", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name"}
)
_KUBECONFIG_USER_KEYS = frozenset({"token", "client-certificate-data", "client-key-data"})

T = TypeVar("T")


def is_dns_subdomain(value: str) -> bool:
    """A Kubernetes object name (RFC 1123 subdomain, at most 253 characters)."""
    return len(value) <= 253 and _DNS_SUBDOMAIN.match(value) is not None


def is_dns_label(value: str) -> bool:
    """A Kubernetes namespace name (RFC 1123 label, at most 63 characters)."""
    return len(value) <= 63 and _DNS_LABEL.match(value) is not None


def _check_key(key: str, what: str) -> None:
    """A label or annotation key: optional DNS-subdomain prefix and `/`, then a name ≤ 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and is_dns_subdomain(prefix)):
        raise ValueError(f"{what} key {key!r}: the prefix must be a DNS subdomain")
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        raise ValueError(
            f"{what} key {key!r}: the name must be at most 63 letters, digits, '-', '_' or '.',"
            " starting and ending with a letter or digit"
        )
    if key == MANAGED_BY[0] or prefix == ANNOTATION_PREFIX.rstrip("/"):
        raise ValueError(f"{what} key {key!r} is set by Certforge")


class KubernetesTlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(description="namespace of the Secrets (an RFC 1123 label)")
    api_server: HttpUrl | None = Field(
        default=None,
        description="API server URL; none: the kubeconfig's server, or in-cluster",
    )
    ca_pem: str | None = Field(
        default=None, max_length=65536, description="PEM CA certificate(s) of the API server"
    )
    insecure_skip_tls_verify: bool = Field(default=False, description="development only")
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(
                "must be an RFC 1123 label: at most 63 lower-case letters, digits or '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("ca_pem")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        return check_ca_pem(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            _check_key(key, "label")
            if len(label) > 63 or not _LABEL_VALUE.match(label):
                raise ValueError(
                    f"label {key!r}: the value must be at most 63 letters, digits, '-', '_' or"
                    " '.', starting and ending with a letter or digit"
                )
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            _check_key(key, "annotation")
        if sum(len(k) + len(v) for k, v in value.items()) > 64 * 1024:
            raise ValueError("annotations may hold at most 64 KiB")
        return value


def _kubeconfig_refusal(document: Any) -> str | None:
    """Why a kubeconfig is not accepted (None: fine). Never quotes its content."""
    if not isinstance(document, dict):
        return "kubeconfig must be a YAML mapping"
    for section, key, allowed in (
        ("clusters", "cluster", _KUBECONFIG_CLUSTER_KEYS),
        ("users", "user", _KUBECONFIG_USER_KEYS),
    ):
        entries = document.get(section) or []
        if not isinstance(entries, list) or not entries:
            return f"kubeconfig needs a non-empty {section} list"
        for entry in entries:
            body = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(body, dict):
                return f"kubeconfig {section} entries need a {key} mapping"
            extra = sorted(set(body) - allowed)
            if extra:
                return (
                    f"kubeconfig {key} fields {', '.join(extra)} are not accepted (only inline"
                    f" data: {', '.join(sorted(allowed))}); commands and local files are refused"
                )
    contexts = document.get("contexts") or []
    if not isinstance(contexts, list) or not contexts:
        return "kubeconfig needs a non-empty contexts list"
    current = document.get("current-context")
    if not current and len(contexts) != 1:
        return "kubeconfig needs current-context when it has several contexts"
    return None


def _kubeconfig_clusters(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["cluster"] for entry in document.get("clusters") or []]


class KubernetesTlsCredentials(BaseModel):
    """`token`, or `kubeconfig`, or neither (in-cluster: the syncer pod's service account)."""

    # A validation error must not echo the input (tokens, secret ids, kubeconfigs): pydantic
    # puts the whole input of a model validator into the error; render errors for users with
    # `errors(include_input=False)` as well.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: SecretStr | None = Field(default=None, max_length=16384, description="bearer token")
    kubeconfig: SecretStr | None = Field(
        default=None, max_length=262144, description="kubeconfig YAML content (inline data only)"
    )

    @model_validator(mode="after")
    def _one_method(self) -> KubernetesTlsCredentials:
        if self.token is not None and self.kubeconfig is not None:
            raise ValueError("give either token or kubeconfig, not both")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("token must not be empty")
        if self.kubeconfig is not None:
            try:
                document = yaml.safe_load(self.kubeconfig.get_secret_value())
            except yaml.YAMLError:
                raise ValueError("kubeconfig is not valid YAML") from None
            refusal = _kubeconfig_refusal(document)
            if refusal:
                raise ValueError(refusal)
        return self

    def kubeconfig_document(self) -> dict[str, Any] | None:
        if self.kubeconfig is None:
            return None
        document: dict[str, Any] = yaml.safe_load(self.kubeconfig.get_secret_value())
        if not document.get("current-context"):
            document["current-context"] = document["contexts"][0]["name"]
        return document


def _short(text: object) -> str:
    message = " ".join(str(text).split())
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


def _status_message(exc: Any) -> str:
    """The `message` of a Kubernetes `Status` body, else the HTTP reason (never headers)."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return _short(message)
    return _short(getattr(exc, "reason", None) or "no reason given")


_TRANSIENT_STATUSES = frozenset({408, 409, 429})


def _translate(exc: Exception, action: str) -> SyncError | None:
    """A user-facing error for a failed call (None: not about talking to the API server)."""
    if isinstance(exc, k8s.ApiException):
        status = exc.status or 0
        if status == 0:  # the client's wrapper for TLS failures
            return PermanentSyncError(
                f"TLS to the Kubernetes API server failed ({action}); check api_server and"
                f" ca_pem: {_short(exc.reason)}"
            )
        message = f"Kubernetes API answered {status} to {action}: {_status_message(exc)}"
        if status >= 500 or status in _TRANSIENT_STATUSES:
            return TransientSyncError(message)
        return PermanentSyncError(message)
    if isinstance(exc, k8s_config.ConfigException):
        return PermanentSyncError(f"Kubernetes client configuration: {_short(exc)}")
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # before TimeoutError: a subclass
        return TransientSyncError(f"cannot reach the Kubernetes API server ({action})")
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return TransientSyncError(f"the Kubernetes API server did not answer in time ({action})")
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return TransientSyncError(
            f"cannot reach the Kubernetes API server ({action}): {type(exc).__name__}"
        )
    if isinstance(exc, ValueError):  # an answer that does not deserialize
        return TransientSyncError(
            f"the Kubernetes API server's answer to {action} was not understood: {_short(exc)}"
        )
    return None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def ca_bundle(chain_pem: str) -> str:
    """`ca.crt`: the chain's last certificate when it is a root (self-issued), else the chain."""
    if not chain_pem.strip():
        return ""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:  # not expected (the chain is Certforge's own): send it as it is
        return chain_pem
    last = chain[-1]
    if last.issuer == last.subject:
        return last.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return chain_pem


class KubernetesTlsSecret(Destination[KubernetesTlsSettings, KubernetesTlsCredentials]):
    kind: ClassVar[str] = "kubernetes-tls"
    settings_model: ClassVar[type[BaseModel]] = KubernetesTlsSettings
    credentials_model: ClassVar[type[BaseModel]] = KubernetesTlsCredentials
    needs_private_key: ClassVar[bool] = True
    """A `kubernetes.io/tls` Secret must hold `tls.key`."""

    def __init__(
        self,
        settings: KubernetesTlsSettings,
        credentials: KubernetesTlsCredentials,
        *,
        development: bool,
    ) -> None:
        self.validate_for(settings, credentials, development=development)
        super().__init__(settings, credentials, development=development)
        self._lock = threading.Lock()
        self._api_client: Any = None

    @classmethod
    def validate_for(
        cls,
        settings: KubernetesTlsSettings,
        credentials: KubernetesTlsCredentials,
        *,
        development: bool,
    ) -> None:
        """Checks that depend on the deployment or join settings and credentials."""
        no_credentials = credentials.token is None and credentials.kubeconfig is None
        if settings.api_server is not None and no_credentials:
            raise PermanentSyncError(
                "credentials: api_server needs a token or a kubeconfig"
                " (without api_server the syncer's in-cluster service account is used)"
            )
        if development:
            return
        if settings.insecure_skip_tls_verify:
            raise PermanentSyncError("insecure_skip_tls_verify: refused outside development mode")
        if settings.api_server is not None and settings.api_server.scheme != "https":
            raise PermanentSyncError("api_server: https is required outside development mode")
        document = credentials.kubeconfig_document()
        if document is not None:
            for cluster in _kubeconfig_clusters(document):
                if cluster.get("insecure-skip-tls-verify"):
                    raise PermanentSyncError(
                        "kubeconfig: insecure-skip-tls-verify is refused outside development mode"
                    )
                server = str(cluster.get("server") or "")
                if settings.api_server is None and not server.startswith("https://"):
                    raise PermanentSyncError(
                        "kubeconfig: the server must be https outside development mode"
                    )

    def uses_ambient_credentials(self) -> bool:
        """In-cluster without a token acts as the syncer pod's own service account."""
        credentials = self.credentials
        return (
            self.settings.api_server is None
            and credentials.token is None
            and credentials.kubeconfig is None
        )

    @staticmethod
    def warm_up() -> None:
        """Build the client's lazily built request validators now, without any request.

        The official client (v37) wraps every API method in pydantic's `validate_call` with
        `defer_build`: the first push otherwise spends ~2.5 s of CPU holding the GIL, stalling
        the syncer's event loop. Call once at startup: `await asyncio.to_thread(warm_up)`.
        """
        api_client = k8s.ApiClient(k8s.Configuration())
        core, authorization = k8s.CoreV1Api(api_client), k8s.AuthorizationV1Api(api_client)
        calls: list[Callable[[], object]] = [
            lambda: core.patch_namespaced_secret(None, None, None),
            lambda: core.delete_namespaced_secret(None, None),
            lambda: authorization.create_self_subject_access_review(None),
        ]
        try:
            for call in calls:
                with contextlib.suppress(ValueError):  # pydantic's ValidationError: built now
                    call()
        finally:
            api_client.close()

    # -- the interface ------------------------------------------------------------------------

    async def push(self, item: SyncItem) -> str:
        namespace, name = self._target(item)
        if item.private_key_pem is None:
            raise PermanentSyncError("a kubernetes.io/tls Secret needs the private key")
        body = self.secret_body(item, namespace, name)
        timeout = self.settings.timeout_seconds

        def apply(api_client: Any) -> None:
            k8s.CoreV1Api(api_client).patch_namespaced_secret(
                name,
                namespace,
                body,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
                _request_timeout=timeout,
            )

        await self._run(apply, f"apply Secret {namespace}/{name}")
        return f"{namespace}/{name}"

    async def remove(self, item: SyncItem, external_id: str) -> None:
        namespace, name = self._parse_external_id(external_id)
        timeout = self.settings.timeout_seconds

        def delete(api_client: Any) -> None:
            try:
                k8s.CoreV1Api(api_client).delete_namespaced_secret(
                    name, namespace, _request_timeout=timeout
                )
            except k8s.ApiException as exc:
                if exc.status != 404:  # already gone: fine
                    raise

        await self._run(delete, f"delete Secret {namespace}/{name}")

    async def check(self) -> None:
        """Ask the API server (SelfSubjectAccessReview, a write of nothing) whether these
        credentials may create and patch Secrets in the namespace; server-side apply needs
        both (patch, and create for a Secret that does not exist yet)."""
        namespace = self.settings.namespace
        timeout = self.settings.timeout_seconds

        def review(verb: str) -> Callable[[Any], tuple[bool, str]]:
            def call(api_client: Any) -> tuple[bool, str]:
                body = k8s.V1SelfSubjectAccessReview(
                    api_version="authorization.k8s.io/v1",
                    kind="SelfSubjectAccessReview",
                    spec=k8s.V1SelfSubjectAccessReviewSpec(
                        resource_attributes=k8s.V1ResourceAttributes(
                            namespace=namespace, verb=verb, resource="secrets"
                        )
                    ),
                )
                answer = k8s.AuthorizationV1Api(api_client).create_self_subject_access_review(
                    body, _request_timeout=timeout
                )
                status = answer.status
                if status is None:
                    raise ValueError("the review holds no status")
                return bool(status.allowed), str(status.reason or "")

            return call

        for verb in ("create", "patch"):
            allowed, reason = await self._run(review(verb), f"review '{verb} secrets'")
            if not allowed:
                why = f": {_short(reason)}" if reason else ""
                raise PermanentSyncError(
                    f"the credentials may not {verb} Secrets in namespace {namespace}{why}"
                )

    async def close(self) -> None:
        with self._lock:
            api_client, self._api_client = self._api_client, None
        if api_client is not None:
            await asyncio.to_thread(api_client.close)

    # -- helpers ------------------------------------------------------------------------------

    def secret_body(self, item: SyncItem, namespace: str, name: str) -> dict[str, Any]:
        """The full Secret as applied (the apply configuration Certforge owns)."""
        data = {"tls.crt": _b64(item.fullchain_pem), "tls.key": _b64(item.private_key_pem or "")}
        ca = ca_bundle(item.chain_pem)
        if ca:
            data["ca.crt"] = _b64(ca)
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {**self.settings.labels, MANAGED_BY[0]: MANAGED_BY[1]},
                "annotations": {
                    **self.settings.annotations,
                    f"{ANNOTATION_PREFIX}certificate-id": str(item.certificate_id),
                    f"{ANNOTATION_PREFIX}lineage-id": str(item.lineage_id),
                    f"{ANNOTATION_PREFIX}serial-number": item.serial_number,
                    f"{ANNOTATION_PREFIX}not-after": item.not_after.isoformat(),
                },
            },
            "type": "kubernetes.io/tls",
            "data": data,
        }

    def _target(self, item: SyncItem) -> tuple[str, str]:
        """Where the Secret goes: where it went before (in place), else namespace/name."""
        if item.external_id:
            return self._parse_external_id(item.external_id)
        if not is_dns_subdomain(item.name):
            raise PermanentSyncError(
                f"{item.name!r} is not a valid Secret name: at most 253 lower-case letters,"
                " digits, '-' or '.', starting and ending with a letter or digit"
            )
        return self.settings.namespace, item.name

    @staticmethod
    def _parse_external_id(external_id: str) -> tuple[str, str]:
        namespace, slash, name = external_id.partition("/")
        if not slash or not is_dns_label(namespace) or not is_dns_subdomain(name):
            raise PermanentSyncError(f"{external_id!r} is not a namespace/name Secret id")
        return namespace, name

    async def _run(self, call: Callable[[Any], T], action: str) -> T:
        return await asyncio.to_thread(self._call, call, action)

    def _call(self, call: Callable[[Any], T], action: str) -> T:
        try:
            return call(self._client())
        except SyncError:
            raise
        except Exception as exc:
            error = _translate(exc, action)
            if error is None:
                raise
            raise error from exc

    def _client(self) -> Any:
        with self._lock:
            if self._api_client is None:
                self._api_client = self._build_client()
            return self._api_client

    def _build_client(self) -> Any:
        settings, credentials = self.settings, self.credentials
        configuration = k8s.Configuration()
        document = credentials.kubeconfig_document()
        if document is not None:
            k8s_config.load_kube_config_from_dict(
                document, client_configuration=configuration, persist_config=False
            )
        elif settings.api_server is None:
            k8s_config.load_incluster_config(client_configuration=configuration)
        if settings.api_server is not None:
            configuration.host = str(settings.api_server).rstrip("/")
        if credentials.token is not None:
            # replaces the in-cluster token (and its refresh from the mounted file)
            configuration.refresh_api_key_hook = None
            configuration.api_key = {"BearerToken": credentials.token.get_secret_value()}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        if settings.ca_pem is not None:
            configuration.ssl_ca_cert = None
            configuration.ca_cert_data = settings.ca_pem
        if settings.insecure_skip_tls_verify:
            configuration.verify_ssl = False
        configuration.retries = False  # no retries (nor redirects) inside the client
        return k8s.ApiClient(configuration)
