"""Settings and credentials of `azure-keyvault`: pure (the SDK calls live in the syncer).

Authentication is a service principal (`tenant_id` + `client_id` + a client secret) or the
user-assigned managed identity `client_id` of the syncer's host; the latter belongs to the
platform, not to the application, so the api allows it only where the operator enabled it.
"""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

from certforge.common.destinations.spec import DestinationSpec

MAX_TAGS = 15
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_TENANT = r"^[0-9a-zA-Z.-]{1,256}$"
"""A directory id (GUID) or one of its domain names, what azure-identity accepts."""


def _https_origin(value: HttpUrl, field: str) -> str:
    """`https://host[:port]`, refusing anything with a path, query, fragment or user."""
    if value.scheme != "https":
        raise ValueError(f"{field} must be an https URL")
    if value.username or value.password or value.query or value.fragment:
        raise ValueError(f"{field} must not carry credentials, a query or a fragment")
    if value.path not in (None, "", "/"):
        raise ValueError(f"{field} must not have a path")
    return str(value).rstrip("/")


class AzureKeyVaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault_url: HttpUrl = Field(description="e.g. https://myvault.vault.azure.net")
    tenant_id: str = Field(pattern=_TENANT, description="Directory (tenant) id of the principal")
    client_id: str = Field(
        pattern=_GUID,
        description="Application (client) id of the service principal, or the client id of the"
        " user-assigned managed identity when credentials.use_managed_identity is set",
    )
    authority_host: HttpUrl | None = Field(
        default=None,
        description="Microsoft Entra authority; the public cloud when unset",
    )
    disable_instance_discovery: bool = Field(
        default=False,
        description="Skip MSAL's authority validation at login.microsoftonline.com; needed for"
        " an authority host Microsoft does not know (Azure Stack, private clouds)",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="At most 15 tags")
    purge_on_remove: bool = Field(
        default=False,
        description="After deleting, purge the soft-deleted certificate (needs purge permission)",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("vault_url")
    @classmethod
    def _vault_https(cls, value: HttpUrl) -> HttpUrl:
        _https_origin(value, "vault_url")
        return value

    @field_validator("authority_host")
    @classmethod
    def _authority_https(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None:
            _https_origin(value, "authority_host")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_TAGS:
            raise ValueError(f"Key Vault allows at most {MAX_TAGS} tags, got {len(value)}")
        for name, tag in value.items():
            if not 1 <= len(name) <= MAX_TAG_NAME:
                raise ValueError(f"tag names must have 1 to {MAX_TAG_NAME} characters")
            if len(tag) > MAX_TAG_VALUE:
                raise ValueError(
                    f"tag {name!r}: values must have at most {MAX_TAG_VALUE} characters"
                )
        return value

    @property
    def vault_origin(self) -> str:
        return _https_origin(self.vault_url, "vault_url")

    @property
    def authority(self) -> str | None:
        if self.authority_host is None:
            return None
        return _https_origin(self.authority_host, "authority_host")


class AzureKeyVaultCredentials(BaseModel):
    """Exactly one of: a service principal's client secret, or the host's managed identity."""

    model_config = ConfigDict(extra="forbid")

    client_secret: SecretStr | None = None
    use_managed_identity: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> AzureKeyVaultCredentials:
        has_secret = self.client_secret is not None and bool(self.client_secret.get_secret_value())
        if has_secret == self.use_managed_identity:
            raise ValueError("give either client_secret or use_managed_identity: true (not both)")
        return self


def _ambient(settings: AzureKeyVaultSettings, credentials: AzureKeyVaultCredentials) -> bool:
    return credentials.use_managed_identity


AZURE_KEYVAULT = DestinationSpec(
    "azure-keyvault",
    AzureKeyVaultSettings,
    AzureKeyVaultCredentials,
    uses_ambient_credentials=_ambient,
)
