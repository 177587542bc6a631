"""Settings of the issuer, the only service that holds CA keys."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from certforge.common.settings import LeafKeySettings, check_key_ring
from certforge.issuer.consumer import ConsumerSettings
from certforge.issuer.keypool import KeyPoolSettings
from certforge.issuer.revocation import RevocationSettings


class IssuerSettings(LeafKeySettings):
    required_secrets: ClassVar[tuple[str, ...]] = ("ca_keks", "leaf_keks")

    ca_keks: SecretStr | None = Field(
        default=None,
        description="Key-encryption keys for CA private keys: `kid:base64(32 bytes)[,kid:…]`, "
        "the first one encrypts, all decrypt. Separate from the leaf keys.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL of the API as relying parties reach it; CRL distribution point, "
        "OCSP and CA-issuer URLs in issued certificates are built from it.",
    )

    lint_before_signing: bool = Field(
        default=True,
        description="lint every certificate with pkilint (RFC 5280) before the CA key signs it",
    )
    lint_cache_size: int = Field(
        default=4096,
        ge=0,
        description="certificate shapes whose lint verdict is kept (one full pkilint run per "
        "shape; the certificates of a profile share a few); 0 lints every certificate in full",
    )
    consumer: ConsumerSettings = ConsumerSettings()
    revocation: RevocationSettings = RevocationSettings()
    key_pool: KeyPoolSettings = KeyPoolSettings()

    @field_validator("ca_keks")
    @classmethod
    def _ca_ring(cls, value: SecretStr | None) -> SecretStr | None:
        return check_key_ring(value)

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")
