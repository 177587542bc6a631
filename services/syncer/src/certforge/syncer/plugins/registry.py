"""Every destination kind, by name; settings and credentials are validated through here both
when a sync is created (api) and when the syncer builds a destination."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from certforge.syncer.plugins.aws_acm import AwsAcm
from certforge.syncer.plugins.aws_secrets import AwsSecretsManager
from certforge.syncer.plugins.azure_keyvault import AzureKeyVault
from certforge.syncer.plugins.base import Destination
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
KINDS: dict[str, type[Destination[Any, Any]]] = {cls.kind: cls for cls in _KINDS}


def destination_class(kind: str) -> type[Destination[Any, Any]]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown destination kind {kind!r}; one of {sorted(KINDS)}") from None


def validate(
    kind: str, settings: dict[str, Any], credentials: dict[str, Any] | None
) -> tuple[BaseModel, BaseModel]:
    """The validated settings and credentials models (pydantic ValidationError if not)."""
    cls = destination_class(kind)
    return cls.settings_model.model_validate(settings), cls.credentials_model.model_validate(
        credentials or {}
    )


def build(
    kind: str, settings: dict[str, Any], credentials: dict[str, Any] | None, *, development: bool
) -> Destination[Any, Any]:
    cls = destination_class(kind)
    validated_settings, validated_credentials = validate(kind, settings, credentials)
    return cls(validated_settings, validated_credentials, development=development)
