"""Kubernetes TLS Secret (`kubernetes.io/tls`) per certificate lineage (kind `kubernetes-tls`).

The Secret `{namespace}/{name}` holds `tls.crt` (leaf + chain), `tls.key` and `ca.crt` (the
trust bundle when the sync includes it, else
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
a kubeconfig's `insecure-skip-tls-verify`) is refused: rules of
`certforge.common.destinations.kubernetes_tls` (where the settings and credentials models
live), checked when a sync is created and again by `__init__`.

The official client is blocking, so every call runs in a thread (within `call_deadline`), with
`timeout_seconds` as the timeout of each request and no retries inside the client (the syncer
core retries).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as _k8s_client
from kubernetes import config as _k8s_config

from certforge.common.destinations.kubernetes_tls import (
    ANNOTATION_PREFIX,
    KUBERNETES_TLS,
    MANAGED_BY,
    KubernetesTlsCredentials,
    KubernetesTlsSettings,
    is_dns_label,
    is_dns_subdomain,
)
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncError,
    SyncItem,
    TransientSyncError,
    peer_message,
)

k8s: Any = _k8s_client
"""The official client, partly typed (its `config` loaders are not): used as `Any` here."""
k8s_config: Any = _k8s_config

FIELD_MANAGER = "certforge"

T = TypeVar("T")


def _status_message(exc: Any) -> str:
    """The `message` of a Kubernetes `Status` body, else the HTTP reason (never headers)."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return peer_message(message)
    return peer_message(getattr(exc, "reason", None) or "no reason given")


_TRANSIENT_STATUSES = frozenset({408, 409, 429})


def _translate(exc: Exception, action: str) -> SyncError | None:
    """A user-facing error for a failed call (None: not about talking to the API server)."""
    if isinstance(exc, k8s.ApiException):
        status = exc.status or 0
        if status == 0:  # the client's wrapper for TLS failures
            return PermanentSyncError(
                f"TLS to the Kubernetes API server failed ({action}); check api_server and"
                f" ca_pem: {peer_message(exc.reason)}"
            )
        message = f"Kubernetes API answered {status} to {action}: {_status_message(exc)}"
        if status >= 500 or status in _TRANSIENT_STATUSES:
            return TransientSyncError(message)
        return PermanentSyncError(message)
    if isinstance(exc, k8s_config.ConfigException):
        return PermanentSyncError(f"Kubernetes client configuration: {peer_message(exc)}")
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
            f"the Kubernetes API server's answer to {action} was not understood:"
            f" {peer_message(exc)}"
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
    spec = KUBERNETES_TLS
    label = "Kubernetes"
    needs_private_key: ClassVar[bool] = True
    """A `kubernetes.io/tls` Secret must hold `tls.key`."""

    def __init__(
        self,
        settings: KubernetesTlsSettings,
        credentials: KubernetesTlsCredentials,
        *,
        development: bool,
    ) -> None:
        super().__init__(settings, credentials, development=development)
        self._lock = threading.Lock()
        self._api_client: Any = None

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
                why = f": {peer_message(reason)}" if reason else ""
                raise PermanentSyncError(
                    f"the credentials may not {verb} Secrets in namespace {namespace}{why}"
                )

    async def close(self) -> None:
        with self._lock:
            api_client, self._api_client = self._api_client, None
        if api_client is not None:
            await self.run_blocking(api_client.close, action="close the client")

    # -- helpers ------------------------------------------------------------------------------

    def secret_body(self, item: SyncItem, namespace: str, name: str) -> dict[str, Any]:
        """The full Secret as applied (the apply configuration Certforge owns)."""
        data = {"tls.crt": _b64(item.fullchain_pem), "tls.key": _b64(item.private_key_pem or "")}
        ca = item.trust_bundle_pem or ca_bundle(item.chain_pem)
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

    def call_deadline(self) -> float:
        """One request (connect and read timeouts), plus slack for the client's first call,
        which builds its request validators (seconds of CPU without `warm_up`)."""
        return 2 * self.settings.timeout_seconds + 10

    async def _run(self, call: Callable[[Any], T], action: str) -> T:
        return await self.run_blocking(functools.partial(self._call, call, action), action=action)

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
