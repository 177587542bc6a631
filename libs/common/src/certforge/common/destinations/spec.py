"""The description of one destination kind, and the small checks several kinds share.

A kind is its settings model, its credentials model, its deployment rules and whether it acts
with the syncer's own identity. Pydantic validates what a field can say on its own; the rules
cover what depends on the deployment (https outside development mode) or joins settings and
credentials. Rules return typed field errors with dotted paths (`settings.url`), so the api
reports them precisely and the syncer words them for a sync's status, without either parsing
messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pydantic import BaseModel, ConfigDict, HttpUrl

from certforge.common.errors import FieldError

HTTPS_REQUIRED = "https is required outside development mode"

Rules = Callable[[Any, Any, bool], list[FieldError]]
"""`(settings, credentials, development)` → what the deployment refuses (empty: fine)."""
Ambient = Callable[[Any, Any], bool]
"""`(settings, credentials)` → whether the syncer would act with its own identity."""


class NoCredentials(BaseModel):
    """The credentials of a kind that needs none: any field given is refused."""

    model_config = ConfigDict(extra="forbid")


def no_rules(settings: Any, credentials: Any, development: bool) -> list[FieldError]:
    return []


def never_ambient(settings: Any, credentials: Any) -> bool:
    return False


@dataclass(frozen=True)
class DestinationSpec:
    """One destination kind as the api and the syncer both see it."""

    kind: str
    """The `kind` of a sync (`aws-acm`, `directory`, …)."""
    settings_model: type[BaseModel]
    credentials_model: type[BaseModel] = NoCredentials
    rules: Rules = no_rules
    uses_ambient_credentials: Ambient = never_ambient
    """Acting as the syncer (AWS default chain, in-cluster service account, managed identity)
    rather than with credentials of the sync: the api allows it only where an operator
    enabled it, since every application admin would then act with the platform's identity."""


def https_unless_development(
    field: str, url: HttpUrl | None, development: bool
) -> list[FieldError]:
    """The request carries certificates, keys or tokens: plain http only in development."""
    if url is None or development or url.scheme == "https":
        return []
    return [FieldError(field, HTTPS_REQUIRED)]


def check_ca_pem(value: str | None) -> str | None:
    """Settings validator for a trust anchor given as PEM (`ca_pem` of several kinds)."""
    if value is None:
        return None
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError as exc:
        raise ValueError("ca_pem must hold one or more PEM certificates") from exc
    if not certificates:
        raise ValueError("ca_pem must hold one or more PEM certificates")
    return value
