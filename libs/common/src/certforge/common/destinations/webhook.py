"""Settings and credentials of `webhook`: an https URL and the shared signing secret."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from certforge.common.destinations.spec import DestinationSpec, https_unless_development
from certforge.common.errors import FieldError


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    include_private_key: bool = Field(
        default=False, description="send the managed private key (off unless you need it)"
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120)


class WebhookCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hmac_secret: SecretStr = Field(min_length=16, description="shared secret for signatures")


def _rules(
    settings: WebhookSettings, credentials: WebhookCredentials, development: bool
) -> list[FieldError]:
    return https_unless_development("settings.url", settings.url, development)


WEBHOOK = DestinationSpec("webhook", WebhookSettings, WebhookCredentials, rules=_rules)
