"""Settings and credentials of the AWS destinations (`aws-acm`, `aws-secrets-manager`): pure.

Credentials are an access key pair (with an optional session token) or nothing at all. Nothing
means boto3's default credential chain *of the syncer process* (environment, shared config,
IRSA / ECS task role, EC2 instance profile): every application admin who can create such a sync
acts with the syncer's IAM identity, so the api allows it only where the operator enabled it
(`uses_ambient_credentials`).
"""

from __future__ import annotations

import unicodedata

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

from certforge.common.destinations.spec import DestinationSpec, https_unless_development
from certforge.common.errors import FieldError

AWS_REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"
"""`us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`…"""


class AwsSettings(BaseModel):
    """Where the AWS destination lives; the plugins add their own fields."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(pattern=AWS_REGION_PATTERN, description="AWS region, e.g. `eu-west-1`.")
    endpoint_url: HttpUrl | None = Field(
        default=None,
        description=(
            "Override the service endpoint: for moto_server or LocalStack in development and "
            "tests, or a VPC interface endpoint. Leave unset for AWS. Plain http is refused "
            "outside development mode (the request carries the private key)."
        ),
    )
    timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=60,
        description="Connect and read timeout of one attempt; a call makes at most 2 attempts.",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _plain_endpoint(cls, url: HttpUrl | None) -> HttpUrl | None:
        if url is None:
            return None
        if url.username or url.password:
            raise ValueError("must not contain credentials; use the sync's credentials")
        if url.query or url.fragment:
            raise ValueError("must not have a query or fragment")
        return url


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, SecretStr) and not value.get_secret_value().strip():
        return None
    return value


class AwsCredentials(BaseModel):
    """An access key pair, optionally with a session token; all empty = default chain.

    The default chain is the syncer process's own identity (IRSA, instance profile, env):
    see the module docstring for what that implies.
    """

    model_config = ConfigDict(extra="forbid")

    access_key_id: str | None = Field(default=None, pattern=r"^\w{16,128}$")
    secret_access_key: SecretStr | None = Field(default=None, max_length=1024)
    session_token: SecretStr | None = Field(default=None, max_length=8192)

    @field_validator("access_key_id", "secret_access_key", "session_token", mode="before")
    @classmethod
    def _blanks(cls, value: object) -> object:
        """Forms send empty strings for fields left blank."""
        return _blank_to_none(value)

    @model_validator(mode="after")
    def _pair(self) -> AwsCredentials:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "give access_key_id and secret_access_key together, or neither "
                "(to use the syncer's default AWS credential chain)"
            )
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        return self

    @property
    def uses_default_chain(self) -> bool:
        return self.access_key_id is None

    def secret_values(self) -> list[str]:
        """Values that must never appear in a message."""
        return [
            s.get_secret_value()
            for s in (self.secret_access_key, self.session_token)
            if s is not None and s.get_secret_value()
        ]


_MAX_TAGS = 50
_OWN_TAGS = ("certforge:lineage-id", "certforge:certificate-id")
_MAX_USER_TAGS = _MAX_TAGS - len(_OWN_TAGS)
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def _tag_text_ok(text: str) -> bool:
    """AWS tag characters: Unicode letters, numbers and separators, and `_ . : / = + - @`."""
    return all(
        ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in ("L", "N", "Z") for ch in text
    )


class AwsAcmSettings(AwsSettings):
    tags: dict[str, str] = Field(
        default_factory=dict,
        description=(
            f"Tags for the imported certificates (at most {_MAX_USER_TAGS}; keys 1-128 "
            "characters, values up to 256; keys may not start with `aws:` or `certforge:`)."
        ),
    )

    @field_validator("tags")
    @classmethod
    def _aws_tag_rules(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > _MAX_USER_TAGS:
            raise ValueError(f"at most {_MAX_USER_TAGS} tags")
        for key, value in tags.items():
            if not 1 <= len(key) <= 128:
                raise ValueError(f"tag key {key[:40]!r}: 1 to 128 characters")
            if len(value) > 256:
                raise ValueError(f"tag {key!r}: value longer than 256 characters")
            if key.lower().startswith(("aws:", "certforge:")):
                raise ValueError(f"tag key {key!r}: the prefixes aws: and certforge: are reserved")
            if not _tag_text_ok(key) or not _tag_text_ok(value):
                raise ValueError(
                    f"tag {key!r}: only letters, digits, spaces and _ . : / = + - @ are allowed"
                )
        return tags


class AwsSecretsManagerSettings(AwsSettings):
    kms_key_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="KMS key (id, ARN or alias) for new secrets; default: aws/secretsmanager.",
    )
    recovery_window_days: int | None = Field(
        default=None,
        ge=7,
        le=30,
        description=(
            "On remove, keep the secret recoverable this many days; unset = delete at once "
            "without recovery."
        ),
    )
    adopt_existing: bool = Field(
        default=False,
        description=(
            "Write into an existing secret of the same name that Certforge did not create "
            "(e.g. one made by Terraform); otherwise such a name is refused."
        ),
    )


def _rules(
    settings: AwsSettings, credentials: AwsCredentials, development: bool
) -> list[FieldError]:
    return https_unless_development("settings.endpoint_url", settings.endpoint_url, development)


def _ambient(settings: AwsSettings, credentials: AwsCredentials) -> bool:
    return credentials.uses_default_chain


AWS_ACM = DestinationSpec(
    "aws-acm", AwsAcmSettings, AwsCredentials, rules=_rules, uses_ambient_credentials=_ambient
)
AWS_SECRETS_MANAGER = DestinationSpec(
    "aws-secrets-manager",
    AwsSecretsManagerSettings,
    AwsCredentials,
    rules=_rules,
    uses_ambient_credentials=_ambient,
)
