from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, SecretStr, model_validator

from certforge.api.schemas.common import PRINTABLE, Name, Strict, examples
from certforge.common.domain import CAStatus, CAType, KeyAlgorithm, SignatureHash, SubjectFields
from certforge.common.durations import Duration
from certforge.common.name_constraints import NameConstraints


class CASubject(SubjectFields):
    """A CA's subject: its common name is what people and chain builders see, so it is
    required (in the schema too, so that the document does not offer a CA without one)."""

    common_name: str = Field(min_length=1, max_length=64, json_schema_extra={"pattern": PRINTABLE})


_PARENT_RULE: dict[str, Any] = {
    "if": {"properties": {"type": {"const": "intermediate"}}},
    "then": {"required": ["parent_ca_id"], "properties": {"parent_ca_id": {"type": "string"}}},
    "else": {"properties": {"parent_ca_id": {"type": "null"}}},
}
"""`_check`'s rule on `parent_ca_id`, stated in the schema: an intermediate names its parent,
a root has none."""


class CACreate(Strict):
    model_config = examples(
        {
            "name": "root",
            "type": "root",
            "subject": {"common_name": "Example Root CA", "organization": "Example"},
            "key_algorithm": "EC_P256",
            "validity": "10y",
            "max_path_length": 1,
        },
        {
            "name": "shop-issuing",
            "type": "intermediate",
            "parent_ca_id": "0b7e1a52-5c1e-4d7a-9a49-3f0f7f1c2b10",
            "subject": {"common_name": "Shop Issuing CA", "organization": "Example"},
            "validity": "5y",
            "max_path_length": 0,
            "name_constraints": {
                "permitted": {"dns": ["shop.internal"], "ip": ["10.20.0.0/16"]},
                "excluded": {"dns": ["admin.shop.internal"]},
            },
        },
        rules=_PARENT_RULE,
    )

    name: Name
    type: Literal["root", "intermediate"]
    parent_ca_id: UUID | None = Field(default=None, description="required for an intermediate")
    subject: CASubject
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
    signature_algorithm: SignatureHash | None = Field(
        default=None, description="hash of the signature; none = the signing key's natural one"
    )
    validity: Duration = Field(description="e.g. 10y for a root, 5y for an intermediate")
    max_path_length: int | None = Field(
        default=None, ge=0, le=10, description="CAs allowed below this one; none = unlimited"
    )
    not_before: datetime | None = Field(default=None, description="default: now")
    name_constraints: NameConstraints | None = Field(
        default=None,
        description="RFC 5280 name constraints: the names this CA (and every CA below it) may "
        "sign for, wherever the chain is checked; an intermediate's lie inside its parent's",
    )

    @model_validator(mode="after")
    def _check(self) -> CACreate:
        if self.type == "intermediate" and self.parent_ca_id is None:
            raise ValueError("parent_ca_id is required for an intermediate CA")
        if self.type == "root" and self.parent_ca_id is not None:
            raise ValueError("a root CA has no parent_ca_id")
        if self.not_before is not None and self.not_before.tzinfo is None:
            raise ValueError("not_before must carry a timezone")
        return self


class CAImport(Strict):
    model_config = examples(
        {
            "name": "corp-issuing",
            "certificate": "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n",
            "private_key": "-----BEGIN PRIVATE KEY-----\n…\n-----END PRIVATE KEY-----\n",
            "chain": "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n",
        }
    )

    name: Name
    certificate: str = Field(description="PEM of the CA certificate", max_length=65536)
    private_key: SecretStr = Field(description="PEM of its private key (PKCS#8 or traditional)")
    chain: str = Field(default="", description="PEM of the issuers above it, nearest first")


class CAPublic(BaseModel):
    id: UUID
    name: str
    type: CAType
    status: CAStatus
    parent_ca_id: UUID | None
    subject: str = Field(description="RFC 4514 distinguished name")
    key_algorithm: KeyAlgorithm
    signature_algorithm: SignatureHash | None
    max_path_length: int | None
    serial_number: str
    not_before: datetime
    not_after: datetime
    certificate: str = Field(description="PEM")
    chain: str = Field(description="PEM of the issuers above this CA, nearest first")
    name_constraints: NameConstraints | None = Field(
        description="what its certificate carries; issuance also honours those of the CAs above"
    )
    early_renewal_requested_at: datetime | None = Field(
        default=None,
        description="when a product admin asked for every certificate this CA issued before "
        "then to be renewed early (ARI, and the renewer for auto-renewed ones)",
    )
    predecessor_ca_id: UUID | None = Field(
        default=None, description="the CA this one renews or rekeys (a rollover)"
    )
    takes_over_at: datetime | None = Field(
        default=None, description="when the predecessor's profiles are to move to this CA"
    )
    took_over_at: datetime | None = Field(
        default=None, description="when the predecessor's profiles moved to this CA"
    )
    created_at: datetime


class CARenew(Strict):
    """A new certificate for this CA: same subject, same parent; a new CA that succeeds it."""

    model_config = examples({"validity": "5y", "takes_over_at": "2027-01-15T09:00:00Z"})

    name: Name | None = Field(default=None, description="default: the old name and the date")
    validity: Duration = Field(description="of the new CA certificate, from now")
    signature_algorithm: SignatureHash | None = None
    takes_over_at: AwareDatetime | None = Field(
        default=None,
        description="when the old CA's profiles move to the new one; none = only when "
        "POST /cas/{id}/take-over says so",
    )


class CARekey(CARenew):
    """As a renewal, with a new key."""

    model_config = examples({"validity": "5y", "key_algorithm": "EC_P384"})

    key_algorithm: KeyAlgorithm | None = Field(default=None, description="default: the old one")


class CATakeOver(Strict):
    model_config = examples({}, {"at": "2027-01-15T09:00:00Z"})

    at: AwareDatetime | None = Field(
        default=None, description="when; none or a past time = now (a later one is scheduled)"
    )


class CACrossSign(Strict):
    model_config = examples({"signer_ca_id": "0b7e1a52-5c1e-4d7a-9a49-3f0f7f1c2b10"})

    signer_ca_id: UUID = Field(description="the second CA (often another root) that signs")
    validity: Duration | None = Field(
        default=None, description="default: as long as both CAs are valid"
    )


class CACrossCertificatePublic(BaseModel):
    id: UUID
    ca_id: UUID
    signer_ca_id: UUID
    serial_number: str
    not_before: datetime
    not_after: datetime
    certificate: str = Field(description="PEM: this CA's subject and key, signed by the signer")
    chain: str = Field(description="PEM of the signer and its issuers, nearest first")


class CAChainPublic(BaseModel):
    signer_ca_id: UUID | None = Field(
        description="the CA that signed the first certificate: its issuer, or a cross-signer"
    )
    certificates: str = Field(description="PEM: a certificate of this CA, then its issuers")
