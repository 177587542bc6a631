"""Shapes of the certificate inventory (search) and of the PKCS#12 download."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, field_validator

from certforge.api.schemas.certificates import CertificatePublic
from certforge.api.schemas.common import Page, Strict, examples

PASSWORD_MIN, PASSWORD_MAX = 8, 256


class InventorySort(StrEnum):
    NOT_AFTER = "not_after"
    NOT_AFTER_DESC = "-not_after"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"

    @property
    def column(self) -> str:
        return self.value.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


class InventoryPage(Page[CertificatePublic]):
    total: int = Field(description="how many certificates match the filters, over all pages")


class Pkcs12Create(Strict):
    model_config = examples({"password": "change-me-please", "include_chain": True})

    password: SecretStr = Field(
        description="protects the key and the file (AES-256); 8 to 256 characters",
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    )
    include_chain: bool = Field(default=True, description="add the issuing CA and its issuers")

    @field_validator("password")
    @classmethod
    def _password_length(cls, value: SecretStr) -> SecretStr:
        if not PASSWORD_MIN <= len(value.get_secret_value()) <= PASSWORD_MAX:
            raise ValueError(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
        return value
