"""Settings and credentials of `vault-kv` (HashiCorp Vault / OpenBao KV version 2): pure.

Authentication is a token or AppRole (`role_id` + `secret_id`); `url` must be https outside
development mode.
"""

from __future__ import annotations

import re

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

_SEGMENT = re.compile(r"^[A-Za-z0-9._@*+=,~-]+$")
"""One path segment: no slash, whitespace, `%`, `?`, `#` or control characters (hvac does not
escape paths, and those would change the request URL)."""


def check_path(value: str, *, what: str, allow_empty: bool) -> str:
    value = value.strip("/")
    if not value:
        if allow_empty:
            return value
        raise ValueError(f"{what} must not be empty")
    for segment in value.split("/"):
        if segment in {".", ".."} or not _SEGMENT.match(segment):
            raise ValueError(
                f"{what} {value!r}: each segment may hold only letters, digits and ._@*+=,~-"
            )
    return value


class VaultKvSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="Vault/OpenBao address, e.g. https://vault.example.com:8200")
    mount: str = Field(default="secret", max_length=256, description="KV v2 mount path")
    path_prefix: str = Field(
        default="certforge", max_length=512, description="objects go to {path_prefix}/{name}"
    )
    namespace: str | None = Field(
        default=None, max_length=256, description="Vault Enterprise namespace"
    )
    ca_pem: str | None = Field(
        default=None,
        max_length=65536,
        description="PEM CA certificate(s) to trust for the server's TLS certificate, instead of "
        "the system's trust store",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str) -> str:
        return check_path(value, what="mount", allow_empty=False)

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_path(value, what="path_prefix", allow_empty=True)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value, what="namespace", allow_empty=False)

    @field_validator("ca_pem")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        return check_ca_pem(value)


class VaultKvCredentials(BaseModel):
    """Exactly one method: `token`, or AppRole (`role_id` and `secret_id`)."""

    # A validation error must not echo the input (tokens, secret ids, kubeconfigs): pydantic
    # puts the whole input of a model validator into the error; render errors for users with
    # `errors(include_input=False)` as well.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: SecretStr | None = Field(default=None, max_length=4096)
    role_id: str | None = Field(default=None, min_length=1, max_length=256)
    secret_id: SecretStr | None = Field(default=None, max_length=1024)
    approle_mount: str = Field(default="approle", max_length=256)

    @field_validator("approle_mount")
    @classmethod
    def _approle_mount(cls, value: str) -> str:
        return check_path(value, what="approle_mount", allow_empty=False)

    @model_validator(mode="after")
    def _one_method(self) -> VaultKvCredentials:
        approle = self.role_id is not None or self.secret_id is not None
        if self.token is not None and approle:
            raise ValueError("give either token or role_id + secret_id, not both")
        if self.token is None and not approle:
            raise ValueError("give token, or role_id + secret_id for AppRole")
        if approle and (self.role_id is None or self.secret_id is None):
            raise ValueError("AppRole needs both role_id and secret_id")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("token must not be empty")
        if self.secret_id is not None and not self.secret_id.get_secret_value():
            raise ValueError("secret_id must not be empty")
        return self

    @property
    def uses_approle(self) -> bool:
        return self.role_id is not None


def _rules(
    settings: VaultKvSettings, credentials: VaultKvCredentials, development: bool
) -> list[FieldError]:
    return https_unless_development("settings.url", settings.url, development)


VAULT_KV = DestinationSpec("vault-kv", VaultKvSettings, VaultKvCredentials, rules=_rules)
