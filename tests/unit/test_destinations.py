"""Validation of a sync's configuration (`certforge.common.destinations`): what the api
answers with a 422 and the syncer refuses to build, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from certforge.common.destinations.catalog import KINDS, validate_configuration
from certforge.common.errors import CertforgeError

AWS = {"region": "eu-west-1"}
AWS_KEYS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "s" * 40}
HOOK_SECRET = {"hmac_secret": "0123456789abcdef0123"}
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://k8s.example.com"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
"""
AZURE = {
    "vault_url": "https://v.vault.azure.net",
    "tenant_id": "contoso.onmicrosoft.com",
    "client_id": "00000000-0000-0000-0000-000000000001",
}

# (kind, settings, credentials, development, allow_ambient)
VALID = [
    pytest.param("directory", {"path": "/srv/certs"}, None, False, False, id="ok/directory"),
    pytest.param(
        "webhook", {"url": "https://h.example.com"}, HOOK_SECRET, False, False, id="ok/webhook"
    ),
    pytest.param(
        "webhook",
        {"url": "http://h.example.com"},
        HOOK_SECRET,
        True,
        False,
        id="ok/webhook-plain-http-in-development",
    ),
    pytest.param("aws-acm", AWS, AWS_KEYS, False, False, id="ok/aws-with-keys"),
    pytest.param("aws-acm", AWS, None, False, True, id="ok/aws-default-chain-when-allowed"),
    pytest.param(
        "kubernetes-tls", {"namespace": "certs"}, None, False, True, id="ok/k8s-in-cluster-allowed"
    ),
    pytest.param(
        "azure-keyvault",
        AZURE,
        {"use_managed_identity": True},
        False,
        True,
        id="ok/azure-managed-identity-allowed",
    ),
]


@pytest.mark.parametrize(("kind", "settings", "credentials", "development", "ambient"), VALID)
def test_valid_configurations(
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    development: bool,
    ambient: bool,
) -> None:
    configuration = validate_configuration(
        kind, settings, credentials, development=development, allow_ambient=ambient
    )
    assert configuration.spec is KINDS[kind]
    assert isinstance(configuration.settings, KINDS[kind].settings_model)


# (kind, settings, credentials, development, allow_ambient, expected fields)
INVALID = [
    pytest.param("ftp", {}, None, True, True, ["kind"], id="fail/unknown-kind"),
    pytest.param(
        "aws-acm",
        {"region": "Europe", "colour": "red"},
        AWS_KEYS,
        True,
        True,
        ["settings.region", "settings.colour"],
        id="fail/every-settings-error-at-once",
    ),
    pytest.param(
        "aws-acm",
        AWS,
        {"access_key_id": "AKIAIOSFODNN7EXAMPLE"},
        True,
        True,
        ["credentials"],
        id="fail/aws-half-a-key-pair",
    ),
    pytest.param(
        "aws-acm",
        {**AWS, "endpoint_url": "http://127.0.0.1:1"},
        AWS_KEYS,
        False,
        True,
        ["settings.endpoint_url"],
        id="fail/aws-plain-endpoint-in-production",
    ),
    pytest.param("aws-acm", AWS, None, True, False, ["credentials"], id="fail/aws-ambient-off"),
    pytest.param(
        "webhook",
        {"url": "http://h.example.com"},
        HOOK_SECRET,
        False,
        True,
        ["settings.url"],
        id="fail/webhook-plain-http-in-production",
    ),
    pytest.param(
        "webhook",
        {"url": "https://h.example.com"},
        {"hmac_secret": "short"},
        True,
        True,
        ["credentials.hmac_secret"],
        id="fail/webhook-short-secret",
    ),
    pytest.param(
        "vault-kv",
        {"url": "http://vault.example.com"},
        {"token": "t"},
        False,
        True,
        ["settings.url"],
        id="fail/vault-plain-http-in-production",
    ),
    pytest.param(
        "kubernetes-tls",
        {"namespace": "certs", "api_server": "https://k8s.example.com"},
        None,
        True,
        True,
        ["credentials"],
        id="fail/k8s-api-server-without-credentials",
    ),
    pytest.param(
        "kubernetes-tls",
        {
            "namespace": "certs",
            "api_server": "http://k8s.example.com",
            "insecure_skip_tls_verify": True,
        },
        {"token": "t"},
        False,
        True,
        ["settings.insecure_skip_tls_verify", "settings.api_server"],
        id="fail/k8s-every-rule-at-once",
    ),
    pytest.param(
        "kubernetes-tls",
        {"namespace": "certs"},
        {"kubeconfig": KUBECONFIG},
        False,
        True,
        ["credentials.kubeconfig"],
        id="fail/k8s-kubeconfig-plain-server-in-production",
    ),
    pytest.param(
        "kubernetes-tls",
        {"namespace": "certs"},
        None,
        True,
        False,
        ["credentials"],
        id="fail/k8s-in-cluster-ambient-off",
    ),
    pytest.param(
        "azure-keyvault",
        AZURE,
        {"use_managed_identity": True},
        True,
        False,
        ["credentials"],
        id="fail/azure-managed-identity-ambient-off",
    ),
]


@pytest.mark.parametrize(
    ("kind", "settings", "credentials", "development", "ambient", "fields"), INVALID
)
def test_invalid_configurations_name_each_field(
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    development: bool,
    ambient: bool,
    fields: list[str],
) -> None:
    with pytest.raises(CertforgeError) as raised:
        validate_configuration(
            kind, settings, credentials, development=development, allow_ambient=ambient
        )
    assert [e.field for e in raised.value.errors] == fields
    for error in raised.value.errors:
        assert f"{error.field}: {error.message}" in raised.value.detail


def test_secrets_never_reach_the_messages() -> None:
    secret = "Z" * 20
    with pytest.raises(CertforgeError) as raised:
        validate_configuration(
            "vault-kv",
            {"url": "https://vault.example.com"},
            {"token": secret, "role_id": "r", "secret_id": secret},
            development=True,
            allow_ambient=True,
        )
    assert secret not in raised.value.detail
    assert all(secret not in e.message for e in raised.value.errors)
