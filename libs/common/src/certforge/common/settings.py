"""Settings shared by every service; each service subclasses `CommonSettings` with its own fields.

Read from the environment (`CERTFORGE_…`, nested with `__`) and from files in a secrets
directory (Kubernetes mounts each Secret key as a file; name the directory with
`CERTFORGE_SECRETS_DIR`). Nothing is read at import time: `main` builds the settings.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Self

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class NatsSettings(BaseModel):
    """Where JetStream lives and the names Certforge uses in it."""

    namespace: str = Field(
        default="certforge",
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="Subject root and stream-name prefix: streams `<NS>_COMMANDS`/`<NS>_EVENTS`, "
        "subjects `<ns>.cmd.*`/`<ns>.evt.*`. Tests use their own so runs never collide.",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas")
    duplicate_window_seconds: int = Field(
        default=600, ge=10, description="JetStream de-duplication window for Nats-Msg-Id"
    )


class OutboxSettings(BaseModel):
    batch_size: int = Field(default=256, ge=1, le=10_000)
    poll_interval_seconds: float = Field(default=1.0, gt=0, description="fallback poll period")
    max_backoff_seconds: float = Field(
        default=10.0, gt=0, description="longest wait when NATS fails"
    )
    publish_timeout_seconds: float = Field(
        default=5.0, gt=0, description="how long to wait for JetStream to acknowledge a message"
    )
    retention_hours: int = Field(default=24, ge=1, description="sent rows are purged after this")


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CERTFORGE_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    environment: Environment = Environment.PRODUCTION
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/certforge")
    database_pool_size: int = Field(default=10, ge=1, le=200)
    nats_url: str = "nats://127.0.0.1:4222"
    nats: NatsSettings = NatsSettings()
    outbox: OutboxSettings = OutboxSettings()
    state_dir: Path = Path(".certforge")
    log_level: str = "INFO"
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector URL for traces (e.g. http://otel-collector:4318); "
        "traces are recorded but not exported when unset (OTEL_EXPORTER_OTLP_ENDPOINT also works)",
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="worker services serve /livez, /readyz and /metrics here when set",
    )

    required_secrets: ClassVar[tuple[str, ...]] = ()
    """Secret fields the service cannot start without, in every environment (the dev stack
    generates them); all missing ones are reported together."""

    @model_validator(mode="after")
    def _require_secrets(self) -> Self:
        missing = [
            f"CERTFORGE_{name.upper()}"
            for name in self.required_secrets
            if not secret_is_set(getattr(self, name))
        ]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(
                f"{' and '.join(missing)} {verb} required: key-encryption keys "
                "`kid:base64(32 bytes)[,kid:…]` (make run generates them in its state directory)"
            )
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Build from the environment, with the secrets directory named by CERTFORGE_SECRETS_DIR."""
        secrets_dir = os.environ.get("CERTFORGE_SECRETS_DIR")
        if secrets_dir:
            return cls(_secrets_dir=secrets_dir, **overrides)
        return cls(**overrides)

    @classmethod
    def load_or_exit(cls, service: str, **overrides: Any) -> Self:
        """`load()` for a service's `main`: a configuration error (a missing key, a bad value)
        stops the process with exit code 2 and one line per problem naming the environment
        variable, instead of a pydantic traceback. Values are never printed: they may be secrets.
        """
        try:
            return cls.load(**overrides)
        except ValidationError as exc:
            _exit_invalid_settings(service, exc)

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT


class LeafKeySettings(CommonSettings):
    """Services that read or write managed leaf private keys (api, issuer, syncer)."""

    leaf_keks: SecretStr | None = Field(
        default=None,
        description="Key-encryption keys for managed leaf keys: `kid:base64(32 bytes)[,kid:…]`, "
        "the first one encrypts, all decrypt.",
    )
    required_secrets: ClassVar[tuple[str, ...]] = ("leaf_keks",)

    @field_validator("leaf_keks")
    @classmethod
    def _leaf_ring(cls, value: SecretStr | None) -> SecretStr | None:
        return check_key_ring(value)


def check_key_ring(value: SecretStr | None) -> SecretStr | None:
    """Refuse a malformed key ring at start-up; the message never contains key material."""
    if value is not None and value.get_secret_value().strip():
        from certforge.common.crypto.envelope import KeyRing

        KeyRing.parse(value.get_secret_value())
    return value


def secret_is_set(value: SecretStr | None) -> bool:
    """Whether a secret setting was given a value (an empty variable counts as missing)."""
    return value is not None and bool(value.get_secret_value().strip())


def settings_errors(exc: ValidationError, prefix: str = "CERTFORGE_") -> list[str]:
    """One readable line per validation problem: `CERTFORGE_API_PORT: Input should be …` for a
    field (nested fields joined with `__`, as in the environment), the message alone for a
    whole-model check that names its variable itself. Never includes the rejected input."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        fields = [str(part) for part in error["loc"]]
        if fields:
            lines.append(f"{prefix}{'__'.join(fields).upper()}: {message}")
        else:
            lines.append(message)
    return lines


def _exit_invalid_settings(service: str, exc: ValidationError) -> NoReturn:
    for line in settings_errors(exc):
        print(f"{service}: configuration error: {line}", file=sys.stderr)
    raise SystemExit(2)
