"""Settings and credentials of `kubernetes-tls`: pure (the client calls live in the syncer).

Credentials: `token` (with `api_server`), an inline `kubeconfig` holding data only (entries
that run a command or read a file of the syncer's host are refused: the kubeconfig comes from
an application admin), or neither: in-cluster, as the syncer pod's own service account, which
the api allows only where the operator enabled it. Outside development mode the API server
must be https and skipping TLS verification is refused.
"""

from __future__ import annotations

import re
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

from certforge.common.destinations.spec import (
    DestinationSpec,
    check_ca_pem,
    https_unless_development,
)
from certforge.common.errors import FieldError

MANAGED_BY = ("app.kubernetes.io/managed-by", "certforge")
ANNOTATION_PREFIX = "certforge.io/"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_KUBECONFIG_CLUSTER_KEYS = frozenset(
    {"server", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name"}
)
_KUBECONFIG_USER_KEYS = frozenset({"token", "client-certificate-data", "client-key-data"})


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


def _rules(
    settings: KubernetesTlsSettings, credentials: KubernetesTlsCredentials, development: bool
) -> list[FieldError]:
    errors: list[FieldError] = []
    if settings.api_server is not None and _no_credentials(credentials):
        errors.append(
            FieldError(
                "credentials",
                "api_server needs a token or a kubeconfig"
                " (without api_server the syncer's in-cluster service account is used)",
            )
        )
    if development:
        return errors
    if settings.insecure_skip_tls_verify:
        errors.append(
            FieldError("settings.insecure_skip_tls_verify", "refused outside development mode")
        )
    errors += https_unless_development("settings.api_server", settings.api_server, development)
    document = credentials.kubeconfig_document()
    for cluster in _kubeconfig_clusters(document) if document is not None else []:
        if cluster.get("insecure-skip-tls-verify"):
            errors.append(
                FieldError(
                    "credentials.kubeconfig",
                    "insecure-skip-tls-verify is refused outside development mode",
                )
            )
        server = str(cluster.get("server") or "")
        if settings.api_server is None and not server.startswith("https://"):
            errors.append(
                FieldError(
                    "credentials.kubeconfig", "the server must be https outside development mode"
                )
            )
    return errors


def _no_credentials(credentials: KubernetesTlsCredentials) -> bool:
    return credentials.token is None and credentials.kubeconfig is None


def _ambient(settings: KubernetesTlsSettings, credentials: KubernetesTlsCredentials) -> bool:
    """In-cluster without a token acts as the syncer pod's own service account."""
    return settings.api_server is None and _no_credentials(credentials)


KUBERNETES_TLS = DestinationSpec(
    "kubernetes-tls",
    KubernetesTlsSettings,
    KubernetesTlsCredentials,
    rules=_rules,
    uses_ambient_credentials=_ambient,
)
