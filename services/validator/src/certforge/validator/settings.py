"""Settings of the validator (`CERTFORGE_…`; its own under `CERTFORGE_VALIDATOR__…`).

Every default is what a validator facing the Internet needs: the standard ports, the system
resolver, private targets refused. The ports and the resolver exist so that one machine can
run the whole flow (tests, `make run`): responders on free ports, names answered by a DNS
server under the test's control, as Pebble's `-httpport`, `-tlsport` and `-dnsserver` do.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, IPvAnyNetwork, field_validator

from certforge.common.settings import CommonSettings
from certforge.validator.resolver import parse_nameserver


class ValidationSettings(BaseModel):
    http01_port: int = Field(
        default=80, ge=1, le=65535, description="port an http-01 token is fetched from"
    )
    tls_alpn01_port: int = Field(
        default=443, ge=1, le=65535, description="port the tls-alpn-01 handshake is made on"
    )
    https_port: int = Field(
        default=443,
        ge=1,
        le=65535,
        description="the only port an http-01 redirect to https may target (http redirects "
        "may target `http01_port` only)",
    )
    resolver: str = Field(
        default="",
        description="DNS server that answers dns-01 TXT queries and resolves http-01 and "
        "tls-alpn-01 targets: `host`, `host:port` or `[v6]:port`; empty: the system resolver",
    )
    allow_private_targets: bool = Field(
        default=False,
        description="validate against private, loopback, link-local and other non-public "
        "addresses (development and tests; never on a validator that takes orders from the "
        "Internet)",
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        default=[],
        description="networks validated even though they are not public, e.g. "
        '`["10.20.0.0/16"]` for a private PKI whose requesters live there (JSON list)',
    )
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="TCP connect (and DNS query) timeout"
    )
    read_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="time allowed for an HTTP response or a TLS handshake once connected",
    )
    attempt_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="time allowed for one whole try (every lookup, redirect and handshake)",
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="extra tries after a connection-level failure (refused, timed out, DNS "
        "server failure) before the challenge is declared invalid",
    )
    retry_base_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="first wait between tries; doubles with each retry, with jitter",
    )
    concurrency: int = Field(
        default=32, ge=1, le=1000, description="challenges validated at the same time"
    )

    @field_validator("resolver")
    @classmethod
    def _resolver_address(cls, value: str) -> str:
        if value:
            parse_nameserver(value)  # raises ValueError with the reason
        return value

    @property
    def worst_case_seconds(self) -> float:
        """An upper bound of one validation (every try timing out, every wait at its longest):
        the JetStream ack wait must be longer, or the command is redelivered mid-check."""
        waits = sum(self.retry_base_seconds * 2.0**n for n in range(self.retries))
        return (self.retries + 1) * self.attempt_timeout_seconds + waits


class ValidatorSettings(CommonSettings):
    validator: ValidationSettings = ValidationSettings()
