"""Every destination kind's plugin, by name, built from a configuration validated in common
(`certforge.common.destinations.catalog`, the same validation the api applies on creation)."""

from __future__ import annotations

from typing import Any

from certforge.common.destinations.catalog import validate_configuration
from certforge.common.errors import CertforgeError
from certforge.syncer.plugins.aws_acm import AwsAcm
from certforge.syncer.plugins.aws_secrets import AwsSecretsManager
from certforge.syncer.plugins.azure_keyvault import AzureKeyVault
from certforge.syncer.plugins.base import Destination, PermanentSyncError
from certforge.syncer.plugins.directory import DirectoryDestination
from certforge.syncer.plugins.kubernetes_tls import KubernetesTlsSecret
from certforge.syncer.plugins.vault_kv import VaultKv
from certforge.syncer.plugins.webhook import WebhookDestination

_KINDS: tuple[type[Destination[Any, Any]], ...] = (
    AwsAcm,
    AwsSecretsManager,
    AzureKeyVault,
    DirectoryDestination,
    KubernetesTlsSecret,
    VaultKv,
    WebhookDestination,
)
KINDS: dict[str, type[Destination[Any, Any]]] = {cls.spec.kind: cls for cls in _KINDS}


def build(
    kind: str, settings: dict[str, Any], credentials: dict[str, Any] | None, *, development: bool
) -> Destination[Any, Any]:
    """The plugin of a stored sync; a configuration no longer valid (a sync stored before a
    rule tightened, production settings on a development database) is a permanent failure.
    Ambient credentials are not refused here: the api decided that when the sync was made."""
    try:
        configuration = validate_configuration(
            kind, settings, credentials, development=development, allow_ambient=True
        )
    except CertforgeError as exc:
        raise PermanentSyncError(exc.detail) from exc
    cls = KINDS[kind]
    return cls(configuration.settings, configuration.credentials, development=development)
