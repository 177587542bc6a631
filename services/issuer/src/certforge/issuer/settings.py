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
        description="Base URL of the API as clients reach it; the revocation URL is derived "
        "from it when CERTFORGE_REVOCATION_URL is unset.",
    )
    revocation_url: str = Field(
        default="",
        description="Base URL of the CRL distribution point, OCSP and CA-issuer URLs written "
        "into every certificate: plain http:// (the answers are signed, and HTTPS there makes "
        "relying parties validate a certificate to check a certificate). Empty: "
        "CERTFORGE_PUBLIC_URL with http:// in place of https://.",
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

    @field_validator("revocation_url")
    @classmethod
    def _plain_http(cls, value: str) -> str:
        if value and not value.startswith("http://"):
            raise ValueError(
                "CERTFORGE_REVOCATION_URL must be a plain http:// URL: relying parties fetch "
                "CRLs, OCSP answers and CA certificates without TLS (RFC 5280 4.2.1.13; the "
                "CA/Browser Forum requires http)"
            )
        return value

    @property
    def base_url(self) -> str:
        """Where issued certificates point relying parties (`contracts.routes.ca_urls`)."""
        return revocation_base(self.public_url, self.revocation_url)


def revocation_base(public_url: str, revocation_url: str) -> str:
    """The revocation URL when set, else the public URL over plain http (same host and port:
    set CERTFORGE_REVOCATION_URL when https is on a port of its own)."""
    chosen = revocation_url or public_url
    if chosen.startswith("https://"):
        chosen = "http://" + chosen.removeprefix("https://")
    return chosen.rstrip("/")
