"""HashiCorp Vault / OpenBao KV version 2: one secret per certificate lineage (kind `vault-kv`).

The object lives at `{mount}/data/{path_prefix}/{name}` and holds the certificate, chain,
full chain, private key (when Certforge has one), serial number, expiry and ids. A renewal
writes a new KV version at the same path, so readers of the latest version pick it up and the
previous certificate stays readable as an older version until Vault prunes it.

Authentication is a token or AppRole (`role_id` + `secret_id`, logged in lazily and again once
when Vault says the token is no longer good). `hvac` is blocking, so every call runs in a
thread (within `call_deadline`). Requests carry `timeout_seconds` for connecting and for each
read, and are never retried here: the syncer core retries transient failures with backoff.

Development mode: `url` must be https unless the destination is built with
`development=True`: a rule of `certforge.common.destinations.vault_kv` (where the settings and
credentials models live), checked when a sync is created and again by `__init__`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import hvac  # type: ignore[import-untyped, unused-ignore]
import hvac.exceptions  # type: ignore[import-untyped, unused-ignore]
import requests

from certforge.common.destinations.vault_kv import (
    VAULT_KV,
    VaultKvCredentials,
    VaultKvSettings,
    check_path,
)
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncError,
    SyncItem,
    TransientSyncError,
    peer_message,
)

T = TypeVar("T")


def _vault_reason(exc: Any) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        return peer_message("; ".join(str(e) for e in errors))
    text = exc.args[0] if exc.args else None
    return peer_message(text) if text else type(exc).__name__


def _json(answer: Any, action: str) -> dict[str, Any]:
    """hvac returns the raw `requests.Response` when a success is not JSON (an HTML page from
    a proxy, a wrong URL): that is not Vault."""
    if isinstance(answer, dict):
        return answer
    status = getattr(answer, "status_code", "?")
    raise TransientSyncError(
        f"Vault's answer to {action} was not understood: not Vault's JSON (HTTP {status})"
    )


def _translate(exc: Exception, action: str) -> SyncError | None:
    """A user-facing error for a failed hvac/requests call (never holds a token); None for an
    exception that is not about talking to Vault (a bug: let it propagate)."""
    e = hvac.exceptions
    if isinstance(exc, e.Forbidden | e.Unauthorized):
        return PermanentSyncError(f"Vault refused to {action}: {_vault_reason(exc)}")
    if isinstance(exc, e.InvalidPath):
        return PermanentSyncError(f"Vault cannot {action}: no such path ({_vault_reason(exc)})")
    if isinstance(exc, e.InvalidRequest | e.UnsupportedOperation | e.ParamValidationError):
        return PermanentSyncError(f"Vault rejected the request to {action}: {_vault_reason(exc)}")
    if isinstance(exc, e.VaultNotInitialized):
        return TransientSyncError(f"Vault is not initialized ({action})")
    if isinstance(exc, e.VaultDown):
        return TransientSyncError(f"Vault is sealed or down ({action}): {_vault_reason(exc)}")
    if isinstance(
        exc, e.InternalServerError | e.BadGateway | e.RateLimitExceeded | e.PreconditionFailed
    ):
        return TransientSyncError(f"Vault failed to {action}: {_vault_reason(exc)}")
    if isinstance(exc, e.VaultError):  # UnexpectedError: an unknown status, e.g. from a proxy
        return TransientSyncError(f"Vault answered unexpectedly to {action}: {_vault_reason(exc)}")
    if isinstance(exc, requests.exceptions.SSLError):
        return PermanentSyncError(
            f"TLS to Vault failed ({action}); check url and ca_pem: {peer_message(exc)}"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientSyncError(f"Vault did not answer in time ({action})")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransientSyncError(f"cannot reach Vault ({action}): {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.RequestException | ValueError | KeyError):
        # Garbage instead of Vault's JSON (requests' JSONDecodeError is both of the first two).
        return TransientSyncError(
            f"Vault's answer to {action} was not understood: {peer_message(exc)}"
        )
    return None


class VaultKv(Destination[VaultKvSettings, VaultKvCredentials]):
    spec = VAULT_KV
    label = "Vault"
    needs_private_key: ClassVar[bool] = False
    """A certificate without its key is still useful in Vault; the key is written when given."""

    def __init__(
        self, settings: VaultKvSettings, credentials: VaultKvCredentials, *, development: bool
    ) -> None:
        super().__init__(settings, credentials, development=development)
        self._lock = threading.Lock()
        self._client: Any = None
        self._session: requests.Session | None = None
        self._ca_file: str | None = None
        self._logged_in = False

    # -- the interface ------------------------------------------------------------------------

    async def push(self, item: SyncItem) -> str:
        path = item.external_id or self.path_for(item.name)
        self._check_object_path(path)
        data = {
            "certificate": item.certificate_pem,
            "chain": item.chain_pem,
            "fullchain": item.fullchain_pem,
            "serial_number": item.serial_number,
            "not_after": item.not_after.isoformat(),
            "certificate_id": str(item.certificate_id),
            "lineage_id": str(item.lineage_id),
        }
        if item.trust_bundle_pem:
            data["trust_bundle"] = item.trust_bundle_pem
        if item.private_key_pem is not None:
            data["private_key"] = item.private_key_pem
        mount = self.settings.mount

        def write(client: Any) -> None:
            answer = client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, mount_point=mount
            )
            if getattr(answer, "status_code", None) == 204:  # KV v1 / cubbyhole: no version
                raise PermanentSyncError(f"mount {mount!r} is not a KV version 2 engine")
            if "version" not in (_json(answer, "the write").get("data") or {}):
                raise TransientSyncError("Vault's answer to the write holds no KV version")

        await self._run(write, f"write {mount}/{path}")
        return path

    async def remove(self, item: SyncItem, external_id: str) -> None:
        self._check_object_path(external_id)
        mount = self.settings.mount

        def delete(client: Any) -> None:
            with contextlib.suppress(hvac.exceptions.InvalidPath):  # already gone
                client.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=external_id, mount_point=mount
                )

        await self._run(delete, f"delete {mount}/{external_id}")

    async def check(self) -> None:
        """Log in / look the token up, ask Vault what the token may do under the prefix
        (`sys/capabilities-self`, allowed by the default policy), and make sure the mount is
        KV version 2. Writes nothing."""
        mount, prefix = self.settings.mount, self.settings.path_prefix
        probe = f"{prefix}/certforge-check" if prefix else "certforge-check"
        data_path = f"{mount}/data/{probe}"

        def lookup(client: Any) -> None:
            if not _json(client.auth.token.lookup_self(), "the token lookup").get("data"):
                raise TransientSyncError("Vault's answer to the token lookup holds no data")

        def capabilities(client: Any) -> list[str]:
            answer = _json(client.sys.get_capabilities(paths=[data_path]), "capabilities-self")
            found = answer.get("data", answer).get(data_path) or answer.get("capabilities", [])
            return [str(c) for c in found]

        def mount_info(client: Any) -> dict[str, Any]:
            try:
                answer = client.adapter.get(f"/v1/sys/internal/ui/mounts/{mount}")
            except (hvac.exceptions.InvalidPath, hvac.exceptions.Forbidden) as exc:
                raise PermanentSyncError(
                    f"mount {mount!r} not found or not visible to the token"
                ) from exc
            return dict(_json(answer, "the mount lookup").get("data") or {})

        await self._run(lookup, "look up the token")
        allowed = await self._run(capabilities, f"read the token's capabilities on {data_path}")
        if "root" not in allowed and not {"create", "update"} <= set(allowed):
            granted = ", ".join(allowed) or "none"
            raise PermanentSyncError(
                f"the token may not write {data_path} (capabilities: {granted})"
            )
        info = await self._run(mount_info, f"read the mount {mount}")
        version = str((info.get("options") or {}).get("version", "1"))
        if info.get("type") not in {"kv", "generic"} or version != "2":
            raise PermanentSyncError(
                f"mount {mount!r} is not a KV version 2 engine "
                f"(type {info.get('type')}, version {version})"
            )

    async def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            if self._ca_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._ca_file)
            self._client = self._session = self._ca_file = None
            self._logged_in = False

    # -- helpers ------------------------------------------------------------------------------

    def path_for(self, name: str) -> str:
        """The object path inside the mount for an item name."""
        prefix = self.settings.path_prefix
        return f"{prefix}/{name}" if prefix else name

    @staticmethod
    def _check_object_path(path: str) -> None:
        try:
            check_path(path, what="object path", allow_empty=False)
        except ValueError as exc:
            raise PermanentSyncError(str(exc)) from None
        if path != path.strip("/"):
            raise PermanentSyncError(f"object path {path!r} must not start or end with '/'")

    def call_deadline(self) -> float:
        """A call makes at most 4 requests (AppRole login, the call, a second login when the
        token expired, the call again), each with connect and read timeouts; plus slack."""
        return 4 * 2 * self.settings.timeout_seconds + 5

    async def _run(self, call: Callable[[Any], T], action: str) -> T:
        return await self.run_blocking(functools.partial(self._call, call, action), action=action)

    def _call(self, call: Callable[[Any], T], action: str) -> T:
        """Run `call(client)` in this thread; log in (again) with AppRole when needed."""
        try:
            client = self._ready_client()
            try:
                return call(client)
            except hvac.exceptions.Forbidden:
                if not self.credentials.uses_approle:
                    raise
                # The AppRole token may have expired: log in once more and try again.
                self._login(client, force=True)
                return call(client)
        except SyncError:
            raise
        except Exception as exc:
            error = _translate(exc, action)
            if error is None:
                raise
            raise error from exc

    def _ready_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            client = self._client
        if self.credentials.uses_approle and not self._logged_in:
            self._login(client, force=False)
        return client

    def _build_client(self) -> Any:
        settings = self.settings
        verify: bool | str = True
        if settings.ca_pem:
            fd, self._ca_file = tempfile.mkstemp(prefix="certforge-vault-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as handle:
                handle.write(settings.ca_pem)
            verify = self._ca_file
        self._session = requests.Session()
        # hvac (2.4) takes `verify` from a passed session whenever `session.verify` is truthy,
        # which the default `True` is: set it on the session or the CA file is ignored.
        self._session.verify = verify
        token = self.credentials.token
        return hvac.Client(
            url=str(settings.url).rstrip("/"),
            # "" (not None) for AppRole: hvac would otherwise read VAULT_TOKEN / ~/.vault-token.
            token=token.get_secret_value() if token is not None else "",
            verify=verify,
            timeout=settings.timeout_seconds,
            namespace=settings.namespace,
            session=self._session,
        )

    def _login(self, client: Any, *, force: bool) -> None:
        credentials = self.credentials
        assert credentials.role_id is not None
        assert credentials.secret_id is not None
        with self._lock:
            if self._logged_in and not force:
                return
            try:
                client.auth.approle.login(
                    role_id=credentials.role_id,
                    secret_id=credentials.secret_id.get_secret_value(),
                    mount_point=credentials.approle_mount,
                )
            except hvac.exceptions.InvalidRequest as exc:
                raise PermanentSyncError(f"AppRole login refused: {_vault_reason(exc)}") from exc
            except Exception as exc:
                error = _translate(exc, "log in with AppRole")
                if error is None:
                    raise
                raise error from exc
            self._logged_in = True
