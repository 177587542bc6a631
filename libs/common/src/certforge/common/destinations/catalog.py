"""Every destination kind, by name, and the one validation of a sync's configuration: the api
calls it when a sync is created or changed (a 422 naming each field at fault), the syncer when
it builds a destination from what is stored.

Steps: the kind must exist; settings and credentials must satisfy their models (every error
reported, with its dotted path); then the kind's deployment rules; then, unless the operator
allowed it, the sync must not act with the syncer's own identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from certforge.common.destinations.aws import AWS_ACM, AWS_SECRETS_MANAGER
from certforge.common.destinations.azure_keyvault import AZURE_KEYVAULT
from certforge.common.destinations.directory import DIRECTORY
from certforge.common.destinations.kubernetes_tls import KUBERNETES_TLS
from certforge.common.destinations.spec import DestinationSpec
from certforge.common.destinations.vault_kv import VAULT_KV
from certforge.common.destinations.webhook import WEBHOOK
from certforge.common.errors import FieldError, Unprocessable

KINDS: dict[str, DestinationSpec] = {
    spec.kind: spec
    for spec in (
        AWS_ACM,
        AWS_SECRETS_MANAGER,
        AZURE_KEYVAULT,
        DIRECTORY,
        KUBERNETES_TLS,
        VAULT_KV,
        WEBHOOK,
    )
}

AMBIENT_REFUSED = (
    "give credentials: acting with the syncer's own identity (default AWS chain, "
    "in-cluster account, managed identity) is off; an operator enables it with "
    "CERTFORGE_SYNC_AMBIENT_CREDENTIALS=true"
)


@dataclass(frozen=True)
class Configuration:
    """A sync's configuration that passed every check."""

    spec: DestinationSpec
    settings: BaseModel
    credentials: BaseModel


def validate_configuration(
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    *,
    development: bool,
    allow_ambient: bool,
) -> Configuration:
    """The validated models; `Unprocessable` with one `FieldError` per fault otherwise."""
    spec = KINDS.get(kind)
    if spec is None:
        raise Unprocessable.on_field("kind", f"unknown kind {kind!r}; one of {sorted(KINDS)}")
    errors: list[FieldError] = []
    settings_model = _parsed(spec.settings_model, settings, "settings", errors)
    credentials_model = _parsed(spec.credentials_model, credentials or {}, "credentials", errors)
    if settings_model is None or credentials_model is None:
        raise _invalid(kind, errors)
    errors = spec.rules(settings_model, credentials_model, development)
    if errors:
        raise _invalid(kind, errors)
    if not allow_ambient and spec.uses_ambient_credentials(settings_model, credentials_model):
        raise Unprocessable.on_field("credentials", AMBIENT_REFUSED)
    return Configuration(spec, settings_model, credentials_model)


def _parsed(
    model: type[BaseModel], data: dict[str, Any], prefix: str, errors: list[FieldError]
) -> BaseModel | None:
    """The model, or None with its errors appended (pydantic's message; never the input)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors += [
            FieldError(".".join([prefix, *map(str, e["loc"])]), e["msg"])
            for e in exc.errors(include_input=False)
        ]
        return None


def _invalid(kind: str, errors: list[FieldError]) -> Unprocessable:
    return Unprocessable(
        detail=f"invalid {kind} configuration: "
        + "; ".join(f"{e.field}: {e.message}" for e in errors),
        errors=errors,
    )
