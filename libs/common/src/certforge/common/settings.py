"""Settings shared by every service; each service subclasses `CommonSettings` with its own fields.

Read from the environment (`CERTFORGE_…`, nested with `__`) and from files in a secrets
directory (Kubernetes mounts each Secret key as a file; name the directory with
`CERTFORGE_SECRETS_DIR`). Nothing is read at import time: `main` builds the settings.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
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
    health_port: int | None = Field(
        default=None, ge=0, le=65535, description="worker services serve /healthz here when set"
    )

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Build from the environment, with the secrets directory named by CERTFORGE_SECRETS_DIR."""
        secrets_dir = os.environ.get("CERTFORGE_SECRETS_DIR")
        if secrets_dir:
            return cls(_secrets_dir=secrets_dir, **overrides)
        return cls(**overrides)

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

    @model_validator(mode="after")
    def _require_leaf_keks(self) -> Self:
        if self.leaf_keks is None:
            raise ValueError(
                "CERTFORGE_LEAF_KEKS is required (make run generates one in the state directory)"
            )
        return self
