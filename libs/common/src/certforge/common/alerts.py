"""Alert rules: what an application wants to hear about, and how it is told. Pure, no I/O.

The api validates a rule with these models and `rule_errors` (a 422 naming every field at
fault, without importing any delivery code); the notifier reads stored rules back through the
same models and decides with `AlertFilters.matches` whether an alert concerns a certificate.
This is the split Infisical uses for its sync destinations: a channel's schema lives here, its
HTTP and SMTP calls only in `services/notifier`.

A channel's secrets (a webhook's signing secret, a Slack URL, a PagerDuty routing key) are split
from its settings (`split_channel`): settings are stored as JSON and returned, secrets are sealed
under the leaf key ring bound to the rule (`secrets_aad`) and only ever shown as
`{"configured": true}`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from certforge.common.destinations.spec import https_unless_development
from certforge.common.errors import FieldError
from certforge.common.policy import _glob

MAX_CHANNELS = 10
SMTP_NOT_CONFIGURED = (
    "the notifier has no SMTP server configured (CERTFORGE_NOTIFIER__SMTP__HOST), so email "
    "channels cannot be delivered"
)


class AlertEvent(StrEnum):
    """What a rule fires on; the names of the REST API."""

    EXPIRING = "expiring"
    ISSUED = "issued"
    RENEWED = "renewed"
    REVOKED = "revoked"
    RENEWAL_FAILED = "renewal_failed"
    SYNC_FAILED = "sync_failed"
    REQUEST_FAILED = "request_failed"
    CA_EXPIRING = "ca_expiring"


WINDOWED = frozenset({AlertEvent.EXPIRING, AlertEvent.CA_EXPIRING})
"""Events the notifier's expiry scan finds, which need a `before` window; the others come from
the events stream."""


def _no_control(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{20,64}$")


def _email(value: str) -> str:
    cleaned = value.strip()
    if not _EMAIL.match(cleaned) or "." not in cleaned.rsplit("@", 1)[1]:
        raise ValueError(f"{value!r} is not an email address (name@example.com)")
    return _no_control(cleaned)


EmailAddress = Annotated[str, AfterValidator(_email)]


def _webhook_secret(value: SecretStr) -> SecretStr:
    """Standard Webhooks secrets are `whsec_` + base64 of 24 to 64 random bytes; the prefix is
    optional, as the reference libraries accept it either way."""
    raw = value.get_secret_value().strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "must be `whsec_` followed by base64 (a Standard Webhooks secret)"
        ) from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("must hold 24 to 64 random bytes (base64 after `whsec_`)")
    return SecretStr("whsec_" + raw)


def _routing_key(value: SecretStr) -> SecretStr:
    if not _ROUTING_KEY.match(value.get_secret_value()):
        raise ValueError("a PagerDuty integration (routing) key: 20 to 64 letters and digits")
    return value


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that are credentials: sealed at rest, never returned."""

    def urls(self) -> list[tuple[str, HttpUrl]]:
        """The URLs the notifier calls, by field name (https outside development)."""
        return []


class WebhookChannel(_Channel):
    """POSTs a CloudEvents 1.0 JSON body signed per the Standard Webhooks specification."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: Annotated[SecretStr, AfterValidator(_webhook_secret)] = Field(
        description="the Standard Webhooks signing secret (`whsec_…`); write-only"
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    def urls(self) -> list[tuple[str, HttpUrl]]:
        return [("url", self.url)]


class EmailChannel(_Channel):
    """A plain-text and an HTML part, through the notifier's SMTP server."""

    type: Literal["email"]
    to: list[EmailAddress] = Field(min_length=1, max_length=20, description="recipients")


class SlackChannel(_Channel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): a message with
    blocks. The URL is the credential, so it is write-only."""

    type: Literal["slack"]
    url: HttpUrl = Field(description="the incoming-webhook URL; write-only")
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)

    def urls(self) -> list[tuple[str, HttpUrl]]:
        return [("url", self.url)]


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: trigger, then resolve when the certificate is renewed or
    revoked."""

    type: Literal["pagerduty"]
    routing_key: Annotated[SecretStr, AfterValidator(_routing_key)] = Field(
        description="the service integration key; write-only"
    )
    severity: Literal["critical", "error", "warning", "info"] = "warning"
    secret_fields: ClassVar[tuple[str, ...]] = ("routing_key",)


Channel = Annotated[
    WebhookChannel | EmailChannel | SlackChannel | PagerDutyChannel,
    Field(discriminator="type"),
]
CHANNEL_TYPES = ("webhook", "email", "slack", "pagerduty")
_CHANNEL: TypeAdapter[Any] = TypeAdapter(Channel)


class AlertFilters(BaseModel):
    """Which certificates a rule is about; every condition given must hold."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[Annotated[str, AfterValidator(_no_control)]] | None = Field(
        default=None,
        max_length=50,
        description="profile slugs; none = every profile of the application",
    )
    name: str | None = Field(
        default=None,
        max_length=253,
        description="a glob over the common name and the SANs (only `*` is special, as in "
        "policies); one matching name is enough",
        examples=["*.shop.example.com"],
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="metadata tags the certificate must carry"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = _no_control(value.strip())
        if not cleaned:
            raise ValueError("a name pattern must not be empty")
        return cleaned

    def matches(self, profile: str | None, names: Iterable[str], tags: Mapping[str, Any]) -> bool:
        """Whether a certificate (or a CA: its name, no tags) is in scope of the rule."""
        if self.profiles is not None and profile not in self.profiles:
            return False
        if any(tags.get(k) != v for k, v in self.tags.items()):
            return False
        if self.name is None:
            return True
        pattern = _glob(self.name.lower())
        return any(pattern.fullmatch(n.lower()) is not None for n in names)


def parse_channel(value: Mapping[str, Any]) -> Any:
    """A channel model from a request body or from stored settings merged with its secrets."""
    return _CHANNEL.validate_python(value)


def split_channel(channel: _Channel) -> tuple[dict[str, Any], dict[str, str]]:
    """(settings stored in clear and shown, secrets to seal) of a validated channel."""
    public = channel.model_dump(mode="json", exclude=set(channel.secret_fields))
    secrets: dict[str, str] = {}
    for name in channel.secret_fields:
        value = getattr(channel, name)
        secrets[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return public, secrets


def secrets_aad(rule_id: UUID) -> bytes:
    """What a rule's sealed secrets are bound to: a ciphertext copied to another rule (or used
    as a sync's credentials, sealed under the same ring) fails to decrypt."""
    return b"alert-rule:" + rule_id.bytes


def rule_errors(
    event: AlertEvent,
    before: object | None,
    filters: AlertFilters,
    channels: list[Any],
    *,
    development: bool,
    smtp_configured: bool | None,
) -> list[FieldError]:
    """What a valid-looking rule still cannot be: every problem, each at its dotted field.

    `smtp_configured` None means "not asked" (the rule has no email channel)."""
    errors: list[FieldError] = []
    if event in WINDOWED and before is None:
        errors.append(FieldError("before", f"{event.value} needs a window, e.g. 30d or 7d"))
    if event not in WINDOWED and before is not None:
        errors.append(
            FieldError("before", "only expiring and ca_expiring take a window; remove it")
        )
    if event is AlertEvent.CA_EXPIRING and filters.tags:
        errors.append(
            FieldError("filters.tags", "CAs carry no metadata tags; ca_expiring cannot use them")
        )
    for index, channel in enumerate(channels):
        for name, url in channel.urls():
            errors += https_unless_development(f"channels.{index}.{name}", url, development)
        if isinstance(channel, EmailChannel) and smtp_configured is False:
            errors.append(FieldError(f"channels.{index}.type", SMTP_NOT_CONFIGURED))
    return errors


def parse_channels(raw: list[dict[str, Any]]) -> tuple[list[Any], list[FieldError]]:
    """Each channel of a request body as its model, or the errors at `channels.N.<field>` (the
    discriminated union would put the type's name into the path: `channels.0.webhook.url`)."""
    channels: list[Any] = []
    errors: list[FieldError] = []
    for index, value in enumerate(raw):
        try:
            channels.append(parse_channel(value))
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                kind = err["type"]
                loc = [str(p) for p in err["loc"]]
                if kind in ("union_tag_invalid", "union_tag_not_found", "model_attributes_type"):
                    message = f"must be one of {', '.join(CHANNEL_TYPES)}"
                    errors.append(FieldError(f"channels.{index}.type", message))
                    continue
                if loc and loc[0] in CHANNEL_TYPES:
                    loc = loc[1:]
                message = str(err["msg"]).removeprefix("Value error, ")
                errors.append(FieldError(".".join([f"channels.{index}", *loc]), message))
    return channels, errors


CHANNEL_SCHEMA: dict[str, Any] = {
    "oneOf": [
        model.model_json_schema()
        for model in (WebhookChannel, EmailChannel, SlackChannel, PagerDutyChannel)
    ]
}
"""The JSON schema of one channel in a request body, for the OpenAPI document."""

SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": WebhookChannel.secret_fields,
    "email": EmailChannel.secret_fields,
    "slack": SlackChannel.secret_fields,
    "pagerduty": PagerDutyChannel.secret_fields,
}
"""The write-only fields of each channel type: shown as `{"configured": true}`."""
