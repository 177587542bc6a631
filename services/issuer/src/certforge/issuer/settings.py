"""Settings of the issuer, the only service that holds CA keys."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from certforge.common.settings import LeafKeySettings


class IssuerSettings(LeafKeySettings):
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

    @model_validator(mode="after")
    def _require_ca_keks(self) -> Self:
        if self.ca_keks is None:
            raise ValueError(
                "CERTFORGE_CA_KEKS is required (make run generates one in the state directory)"
            )
        return self

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")
