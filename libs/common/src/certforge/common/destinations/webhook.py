"""Settings and credentials of `webhook`: an https URL and the shared signing secret.

Requests are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), so receivers can use that specification's ready-made verifiers. The
secret is either a Standard Webhooks secret (`whsec_` + base64 of 24 to 64 random bytes) or,
as before, any string of 16 characters or more, whose UTF-8 bytes are then the key: secrets
stored by earlier releases keep working without re-keying (`signing_key`).
"""

from __future__ import annotations

import base64
import binascii

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
    legacy_signature: bool = Field(
        default=True,
        description="also send the `Certforge-Signature` header of earlier releases beside "
        "the Standard Webhooks headers; turn off once the receiver verifies the new ones (the "
        "header and this setting go away in the next release)",
    )


class WebhookCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hmac_secret: SecretStr = Field(
        min_length=16,
        description="shared secret for signatures: a Standard Webhooks secret (`whsec_` + "
        "base64 of 24 to 64 bytes), or any string of 16 characters or more",
    )


STANDARD_PREFIX = "whsec_"
STANDARD_KEY_BYTES = (24, 64)
"""The key sizes the Standard Webhooks specification asks for (192 to 512 bits)."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded bytes of a `whsec_` secret, else its UTF-8 bytes.

    Why both: a receiver configured before Standard Webhooks holds the plain string; its
    verifier takes `whsec_` + base64 of those same bytes (or the bytes themselves), so nothing
    stored has to change."""
    if secret.startswith(STANDARD_PREFIX):
        return base64.b64decode(secret.removeprefix(STANDARD_PREFIX), validate=True)
    return secret.encode()


def standard_secret(secret: str) -> str:
    """The Standard Webhooks form (`whsec_…`) of a secret, as a receiver's verifier takes it."""
    if secret.startswith(STANDARD_PREFIX):
        return secret
    return STANDARD_PREFIX + base64.b64encode(secret.encode()).decode()


def _secret_errors(secret: str) -> list[FieldError]:
    """A `whsec_` secret must be base64 of 24 to 64 bytes (the message never quotes it)."""
    if not secret.startswith(STANDARD_PREFIX):
        return []
    try:
        size = len(signing_key(secret))
    except (binascii.Error, ValueError):
        return [
            FieldError(
                "credentials.hmac_secret", "a whsec_ secret must be followed by base64 (padded)"
            )
        ]
    low, high = STANDARD_KEY_BYTES
    if not low <= size <= high:
        return [
            FieldError(
                "credentials.hmac_secret",
                f"a whsec_ secret must decode to {low} to {high} bytes, not {size}",
            )
        ]
    return []


def _rules(
    settings: WebhookSettings, credentials: WebhookCredentials, development: bool
) -> list[FieldError]:
    return https_unless_development("settings.url", settings.url, development) + _secret_errors(
        credentials.hmac_secret.get_secret_value()
    )


WEBHOOK = DestinationSpec("webhook", WebhookSettings, WebhookCredentials, rules=_rules)
