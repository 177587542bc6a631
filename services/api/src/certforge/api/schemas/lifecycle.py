from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from certforge.api.schemas.common import Strict, examples
from certforge.common.crypto.csr import MAX_CSR_PEM_BYTES
from certforge.common.domain import RenewalKey, RevocationReason
from certforge.common.issuance import Metadata


def _reason_name(value: object) -> object:
    """Accept the RFC 5280 names (`keyCompromise`) and their snake_case (`key_compromise`),
    like the rest of the API's values."""
    if isinstance(value, str) and "_" in value:
        head, *rest = value.split("_")
        camel = head + "".join(part[:1].upper() + part[1:] for part in rest)
        return {"aaCompromise": "aACompromise"}.get(camel, camel)
    return value


class RevokeBody(Strict):
    model_config = examples({"reason": "keyCompromise"})

    reason: Annotated[RevocationReason, BeforeValidator(_reason_name)] = Field(
        default=RevocationReason.UNSPECIFIED,
        description="RFC 5280 CRLReason name (keyCompromise) or its snake_case (key_compromise)",
    )


class RenewBody(Strict):
    model_config = examples({"key": "new"})

    key: RenewalKey = Field(
        default=RenewalKey.NEW,
        description="new: a fresh key; reuse: the current managed key; csr: the caller's CSR",
    )
    csr: str | None = Field(
        default=None, min_length=1, max_length=MAX_CSR_PEM_BYTES, description="PEM, with key: csr"
    )
    same_key: bool = Field(
        default=False, description="with key: csr, require the CSR to carry the current key"
    )

    @model_validator(mode="after")
    def _check(self) -> RenewBody:
        if self.key is RenewalKey.CSR and not self.csr:
            raise ValueError("csr is required with key: csr")
        if self.key is not RenewalKey.CSR and (self.csr is not None or self.same_key):
            raise ValueError("csr and same_key go with key: csr only")
        return self


class CertificateSettings(Strict):
    model_config = examples(
        {"auto_renew": True, "renew_before_days": 10, "metadata": {"team": "web"}}
    )

    auto_renew: bool | None = None
    renew_before_days: int | None = Field(
        default=None, ge=1, description="between 1 and the validity in days minus 1"
    )
    metadata: Metadata | None = Field(default=None, description="replaces the tags whole")
