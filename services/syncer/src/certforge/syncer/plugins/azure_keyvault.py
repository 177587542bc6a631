"""Azure Key Vault certificates (`azure-keyvault-certificates`), imported as PKCS#12.

One Key Vault *certificate* per lineage, named `item.name`. A push imports a PFX (key, leaf,
chain) under that name: the first import creates the certificate, every later one (a renewal, a
redelivered event, a re-run) adds a new *version* of the same certificate, so the versionless id
(`https://<vault>/certificates/<name>`, the external id) stays the same and whatever reads the
latest version (App Service, Application Gateway, Front Door, AKS CSI driver) picks up the
renewed certificate. Key Vault keeps old versions; nothing here deletes them.

Authentication:

- service principal (the usual case): `settings.tenant_id` + `settings.client_id` +
  `credentials.client_secret`, through `azure.identity.ClientSecretCredential` against
  `settings.authority_host` (the public cloud, `https://login.microsoftonline.com`, by default;
  `https://login.microsoftonline.us` for US Government, `https://login.chinacloudapi.cn` for
  China, your own for Azure Stack). An authority host Microsoft does not know (Azure Stack, a
  private cloud, a test fake) also needs `disable_instance_discovery: true`, otherwise MSAL asks
  `login.microsoftonline.com` to validate it.
- managed identity: `credentials.use_managed_identity: true` and no secret. The syncer then
  authenticates as the *user-assigned* identity `settings.client_id` attached to the host it
  runs on (IMDS / AKS workload identity endpoint); `tenant_id` is not used for the token. Such
  an identity belongs to the platform, not to the application: anyone allowed to create a sync
  can use it against any vault it can write to. Grant it only what every application may do.

Permissions the principal needs (access policy or RBAC "Key Vault Certificates Officer"):
certificates/import (push), certificates/delete (remove), certificates/get (remove with purge:
waiting for the deletion), certificates/purge (`purge_on_remove`), certificates/list (check).

Soft delete: removing a certificate only *deletes* it; Key Vault keeps it recoverable for the
vault's retention period (7-90 days) and refuses to import a certificate with the same name
until it is purged or recovered (HTTP 409, reported as a permanent failure that says so). Set
`purge_on_remove` (needs the purge permission, and no purge protection on the vault) if names
are reused after removal.

Settings and credentials are models of `certforge.common.destinations.azure_keyvault`.

The SDK is blocking: every call runs in a worker thread (`run_blocking`), with
`timeout_seconds` as connect and read timeout of each request, one SDK retry at most (azure-core
never resends a POST whose answer timed out: the import may have happened), and an overall
deadline on top, so a hanging vault or token endpoint fails (transiently) within bounded time.

Errors: refused credentials (Entra ID 400/401, Key Vault 401, a vault of another tenant), 403,
other 4xx, invalid names, a key Key Vault cannot hold (Ed25519) and a challenge for another
cloud are permanent; 408/429/5xx (of Key Vault or Entra ID), connection failures, timeouts and
answers that are not JSON are transient. A 409 on import means a deleted certificate with this
name awaits purge or recovery (permanent); on remove, a deletion still running (transient).

Requests made, for a fresh process (the challenge is cached per vault host afterwards):
  1. `POST {vault}/certificates/{name}/import?api-version=…` without body or Authorization:
     Key Vault answers 401 with `WWW-Authenticate: Bearer authorization="{authority}/{tenant}",
     resource="https://vault.azure.net"` (the challenge-based auth of every Key Vault SDK);
  2. `GET {authority_host}/{tenant}/v2.0/.well-known/openid-configuration` (MSAL, once per
     credential and tenant; preceded by instance discovery at login.microsoftonline.com for an
     authority host MSAL does not know, unless `disable_instance_discovery`);
  3. `POST {token_endpoint}` with `grant_type=client_credentials`, `client_id`,
     `client_secret`, `scope=https://vault.azure.net/.default` (cached until it nears expiry);
  4. the original request again, with `Authorization: Bearer <token>` and its body.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.certificates import (
    CertificateClient,
    CertificateContentType,
    CertificatePolicy,
    KeyCurveName,
    KeyType,
    KeyVaultCertificateIdentifier,
)
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certforge.common.destinations.azure_keyvault import (
    AZURE_KEYVAULT,
    AzureKeyVaultCredentials,
    AzureKeyVaultSettings,
)
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncError,
    SyncItem,
    TransientSyncError,
    peer_message,
)

CERTIFICATE_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
"""Key Vault object names: 1-127 letters, digits and dashes."""

_SDK_RETRIES = 1
"""Retries inside the SDK (stale pooled connection, one 5xx): the syncer retries the rest."""
DELETE_POLL_SECONDS = 1.0
"""How often `remove` asks whether a deletion completed before purging."""
DELETE_WAIT_SECONDS = 30.0
"""How long `remove` waits for Key Vault to finish a soft deletion before purging."""
_ENTRA_MEMORY = 600.0
"""Seconds an Entra ID 429/5xx explains a credential failure without a response: MSAL answers
repeated token requests from its throttling cache (Retry-After, else 5 s) without a request."""

_CURVES: dict[str, KeyCurveName] = {
    "secp256r1": KeyCurveName.p_256,
    "secp384r1": KeyCurveName.p_384,
    "secp521r1": KeyCurveName.p_521,
}

T = TypeVar("T")


class AzureKeyVault(Destination[AzureKeyVaultSettings, AzureKeyVaultCredentials]):
    """Pushes each certificate lineage to one Key Vault certificate (new version on renewal)."""

    spec = AZURE_KEYVAULT
    label = "Azure Key Vault"
    needs_private_key: ClassVar[bool] = True

    def __init__(
        self,
        settings: AzureKeyVaultSettings,
        credentials: AzureKeyVaultCredentials,
        *,
        development: bool,
    ) -> None:
        super().__init__(settings, credentials, development=development)
        timeout = settings.timeout_seconds
        transport: dict[str, Any] = {
            "connection_timeout": timeout,
            "read_timeout": timeout,
            "retry_total": _SDK_RETRIES,
            "retry_backoff_factor": 0.5,
            "retry_backoff_max": 2,
        }
        self._secret = (
            credentials.client_secret.get_secret_value() if credentials.client_secret else None
        )
        self._entra_trouble: tuple[int, float] | None = None
        self._credential: ClientSecretCredential | ManagedIdentityCredential
        if self._secret is not None:
            identity: dict[str, Any] = dict(transport, raw_response_hook=self._on_entra_response)
            if settings.authority:
                identity["authority"] = settings.authority
            if settings.disable_instance_discovery:
                identity["disable_instance_discovery"] = True
            self._credential = ClientSecretCredential(
                settings.tenant_id, settings.client_id, self._secret, **identity
            )
        else:
            self._credential = ManagedIdentityCredential(
                client_id=settings.client_id, raw_response_hook=self._on_entra_response
            )
        self._vault = settings.vault_origin
        self._client = CertificateClient(self._vault, self._credential, **transport)
        self._closed = threading.Event()

    # -- the interface ---------------------------------------------------------------------

    async def push(self, item: SyncItem) -> str:
        name = self._target_of(item)
        pfx, policy = _pkcs12(item, name)
        tags = dict(self.settings.tags) or None

        def call() -> str:
            imported = self._client.import_certificate(
                name,
                pfx,
                enabled=True,
                tags=tags,
                policy=policy,
                preserve_order=True,
            )
            if not imported.id or KeyVaultCertificateIdentifier(imported.id).name != name:
                raise TransientSyncError(
                    f"Azure Key Vault answered the import of {name!r} with another id"
                )
            return self._external_id(name)

        return await self._run(
            call,
            f"import certificate {name!r}",
            self._deadline(1),
            conflict=lambda message: PermanentSyncError(
                f"Azure Key Vault: import certificate {name!r}: a deleted certificate with this"
                " name awaits purge or recovery (purge it, or set purge_on_remove for names that"
                f" come back): {message}"
            ),
        )

    async def remove(self, item: SyncItem, external_id: str) -> None:
        name = self._name_of(external_id)
        purge = self.settings.purge_on_remove

        def call() -> None:
            try:
                poller = self._client.begin_delete_certificate(name)
            except ResourceNotFoundError:
                soft_deleted = False  # gone already; a deleted one may still await its purge
            else:
                # A recovery id means soft delete: the deletion completes in the background.
                soft_deleted = poller.result().recovery_id is not None
            if not purge:
                return
            if soft_deleted:
                self._wait_deleted(name)
            # Not found: soft delete is off on the vault, or it was purged already.
            with contextlib.suppress(ResourceNotFoundError):
                self._client.purge_deleted_certificate(name)

        budget = self._deadline(2) + (DELETE_WAIT_SECONDS if purge else 0)
        await self._run(
            call,
            f"delete certificate {name!r}",
            budget,
            conflict=lambda message: TransientSyncError(
                f"Azure Key Vault: delete certificate {name!r}: still being deleted: {message}"
            ),
        )

    async def check(self) -> None:
        def call() -> None:
            pages = self._client.list_properties_of_certificates(max_page_size=1).by_page()
            for _ in next(iter(pages), []):
                pass

        await self._run(call, "list certificates", self._deadline(1))

    async def close(self) -> None:
        self._closed.set()
        self._client.close()
        self._credential.close()

    # -- helpers -----------------------------------------------------------------------------

    def _deadline(self, calls: int) -> float:
        """Overall seconds for `calls` SDK operations: each may need the challenge, discovery
        and a token, each request retried once, all bounded by `timeout_seconds`."""
        per_request = self.settings.timeout_seconds * (1 + _SDK_RETRIES)
        return calls * 4 * per_request + 5

    def _external_id(self, name: str) -> str:
        """The certificate without version: stays the same across imports (renewals)."""
        return f"{self._vault}/certificates/{name}"

    def _target_of(self, item: SyncItem) -> str:
        """The certificate a push replaces: the one pushed before for this lineage when it is
        in this vault (even if the name template changed since), else `item.name`."""
        if item.external_id:
            with contextlib.suppress(PermanentSyncError):
                return self._name_of(item.external_id)
        return _certificate_name(item.name)

    def _name_of(self, external_id: str) -> str:
        try:
            ident = KeyVaultCertificateIdentifier(external_id)
        except ValueError:
            raise PermanentSyncError(
                f"external id {external_id[:200]!r} is not a Key Vault certificate id"
            ) from None
        vault = ident.vault_url.rstrip("/").lower()
        if vault != self._vault.lower():
            raise PermanentSyncError(
                f"certificate {ident.name!r} is in vault {ident.vault_url}, not in the configured"
                f" {self._vault}; remove it there by hand"
            )
        return _certificate_name(ident.name)

    def _wait_deleted(self, name: str) -> None:
        """Until Key Vault lists the deleted certificate (its deletion completed) or time's up.

        The SDK's `poller.wait()` does the same in a thread of its own that polls forever when
        the deletion never shows; this loop stops at its deadline and when the plugin closes.
        """
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while True:
            try:
                self._client.get_deleted_certificate(name)
                return
            except ResourceNotFoundError:
                pass
            except HttpResponseError as exc:
                if exc.status_code == 403:
                    return  # no get permission: try the purge and let it say
                raise
            if time.monotonic() >= deadline:
                raise TransientSyncError(
                    f"Azure Key Vault has not finished deleting certificate {name!r} after"
                    f" {DELETE_WAIT_SECONDS:.0f} s; purging later"
                )
            if self._closed.wait(DELETE_POLL_SECONDS):
                raise TransientSyncError("the syncer is shutting down")

    async def _run(
        self,
        call: Callable[[], T],
        action: str,
        budget: float,
        *,
        conflict: Callable[[str], SyncError] | None = None,
    ) -> T:
        """`call` in a worker thread within `budget` seconds; failures become SyncErrors.

        `conflict` words a 409, whose meaning depends on the operation."""
        try:
            return await self.run_blocking(call, action=action, deadline=budget)
        except SyncError:
            raise
        except Exception as exc:
            raise self._translate(exc, action, conflict) from None

    def _translate(
        self, exc: Exception, action: str, conflict: Callable[[str], SyncError] | None
    ) -> SyncError:
        """Permanent for what only a person can fix, transient for what may pass by itself."""
        message = self._scrub(_message_of(exc))
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ClientAuthenticationError):
            if _caused_by_connection(exc):
                return TransientSyncError(
                    f"Azure Key Vault: {action}: could not reach Microsoft Entra ID: {message}"
                )
            trouble = self._entra_trouble
            if status is None and trouble and time.monotonic() - trouble[1] < _ENTRA_MEMORY:
                status = trouble[0]
            if status is not None and _transient_status(status):
                return TransientSyncError(
                    f"Azure Key Vault: {action}: Microsoft Entra ID failed ({status}): {message}"
                )
            return PermanentSyncError(
                f"Azure Key Vault: {action}: the credentials were refused: {message}"
            )
        if isinstance(exc, HttpResponseError) and status is not None:
            if status == 409 and conflict is not None:
                return conflict(message)
            if _transient_status(status):
                return TransientSyncError(f"Azure Key Vault: {action} failed ({status}): {message}")
            if status == 403:
                return PermanentSyncError(
                    f"Azure Key Vault: {action}: access denied (check the principal's"
                    f" certificate permissions and the vault firewall): {message}"
                )
            return PermanentSyncError(f"Azure Key Vault: {action} refused ({status}): {message}")
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return TransientSyncError(
                f"Azure Key Vault: {action}: unreachable or timed out: {message}"
            )
        if isinstance(exc, AzureError):
            return TransientSyncError(f"Azure Key Vault: {action} failed: {message}")
        if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
            return TransientSyncError(
                f"Azure Key Vault: {action}: the answer was not Key Vault JSON (a proxy?)"
            )
        if isinstance(exc, ValueError | NotImplementedError):
            # e.g. the vault's challenge names another resource than this vault's cloud.
            return PermanentSyncError(f"Azure Key Vault: {action}: {message}")
        return TransientSyncError(f"Azure Key Vault: {action} failed: {type(exc).__name__}")

    def _on_entra_response(self, response: PipelineResponse[Any, Any]) -> None:
        """Remembers an Entra ID outage: azure-identity's error for it carries no status."""
        status = response.http_response.status_code
        if _transient_status(status):
            self._entra_trouble = (status, time.monotonic())
        else:
            self._entra_trouble = None

    def _scrub(self, message: str) -> str:
        if self._secret:
            message = message.replace(self._secret, "***")
        return peer_message(message)


def _certificate_name(name: str) -> str:
    if not CERTIFICATE_NAME.fullmatch(name):
        raise PermanentSyncError(
            f"{name[:200]!r} is not a valid Key Vault certificate name: 1-127 letters, digits"
            " and dashes; change the sync's name template"
        )
    return name


def _pkcs12(item: SyncItem, name: str) -> tuple[bytes, CertificatePolicy]:
    """The PFX Key Vault imports (unencrypted, with an empty-password MAC), and its policy."""
    if not item.private_key_pem:
        raise PermanentSyncError(
            "Azure Key Vault stores a certificate with its private key; this certificate has none"
        )
    try:
        key = serialization.load_pem_private_key(item.private_key_pem.encode(), password=None)
        certificates = x509.load_pem_x509_certificates(item.certificate_pem.encode())
        chain = (
            x509.load_pem_x509_certificates(item.chain_pem.encode())
            if item.chain_pem.strip()
            else []
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PermanentSyncError("the certificate, chain or key is not valid PEM") from None
    leaf = certificates[0]
    if isinstance(key, rsa.RSAPrivateKey):
        policy = CertificatePolicy(
            content_type=CertificateContentType.pkcs12,
            exportable=True,
            key_type=KeyType.rsa,
            key_size=key.key_size,
            reuse_key=False,
        )
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVES:
        policy = CertificatePolicy(
            content_type=CertificateContentType.pkcs12,
            exportable=True,
            key_type=KeyType.ec,
            key_curve_name=_CURVES[key.curve.name],
            reuse_key=False,
        )
    else:
        raise PermanentSyncError(
            "Azure Key Vault certificates hold RSA or EC (P-256, P-384, P-521) keys only"
        )
    if key.public_key() != leaf.public_key():
        raise PermanentSyncError("the private key does not belong to the certificate")
    pfx = pkcs12.serialize_key_and_certificates(
        name.encode(), key, leaf, certificates[1:] + chain or None, serialization.NoEncryption()
    )
    return pfx, policy


def _transient_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _message_of(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return str(message if message else exc) or type(exc).__name__


def _caused_by_connection(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ServiceRequestError | ServiceResponseError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
