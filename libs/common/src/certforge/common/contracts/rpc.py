"""Request/reply messages between the api and the issuer (core NATS, never persisted).

`ImportCA` carries a CA private key in the clear inside the NATS connection: run NATS with TLS
in production (the Kubernetes manifests do); the key is never logged or stored unencrypted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from certforge.common.domain import CAType, KeyAlgorithm, SignatureHash, SubjectFields
from certforge.common.errors import CertforgeError
from certforge.common.name_constraints import NameConstraints


class CreateCA(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ca_id: UUID
    name: str
    type: CAType
    parent_ca_id: UUID | None = None
    subject: SubjectFields
    key_algorithm: KeyAlgorithm
    signature_hash: SignatureHash | None = None
    validity: timedelta
    max_path_length: int | None = None
    not_before: datetime | None = None
    name_constraints: NameConstraints | None = None


class ImportCA(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ca_id: UUID
    name: str
    certificate_pem: str
    chain_pem: str = ""
    private_key_pem: SecretStr

    def wire(self) -> dict[str, Any]:
        """The JSON body, with the key revealed (pydantic masks SecretStr when dumping)."""
        body = self.model_dump(mode="json")
        body["private_key_pem"] = self.private_key_pem.get_secret_value()
        return body


class RolloverCA(BaseModel):
    """Make `ca_id`, the successor of `predecessor_id`: the same subject, under the same parent,
    with the same key (`rekey` false: a renewal) or a new one (`rekey` true)."""

    model_config = ConfigDict(extra="ignore")

    ca_id: UUID
    predecessor_id: UUID
    name: str
    rekey: bool
    key_algorithm: KeyAlgorithm | None = Field(
        default=None, description="rekey only; default: the predecessor's"
    )
    signature_hash: SignatureHash | None = None
    validity: timedelta
    takes_over_at: datetime | None = None


class CrossSignCA(BaseModel):
    """Sign CA `ca_id`'s subject and key with `signer_ca_id` too; the certificate is stored as
    cross-certificate `cross_id`."""

    model_config = ConfigDict(extra="ignore")

    cross_id: UUID
    ca_id: UUID
    signer_ca_id: UUID
    validity: timedelta | None = Field(
        default=None, description="default: as long as both CAs are valid"
    )


class CAReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ca_id: UUID
    created: bool = Field(description="false when the CA already existed (a retried request)")


class RpcError(BaseModel):
    """A refusal, named by its error kind: the api re-raises that kind and its edge picks the
    HTTP status, so the issuer never speaks HTTP."""

    code: str = Field(
        description="The error kind (`invalid-input`, `not-found`, `conflict`, "
        "`unprocessable`, …; see `certforge.common.errors`); `internal` when the issuer failed."
    )
    detail: str
    errors: list[dict[str, Any]] = []

    @classmethod
    def of(cls, exc: CertforgeError) -> RpcError:
        return cls(
            code=exc.code,
            detail=exc.detail,
            errors=[e.as_dict() for e in exc.errors],
        )


ResultT = TypeVar("ResultT", bound=BaseModel)


class RpcReply(BaseModel, Generic[ResultT]):
    result: ResultT | None = None
    error: RpcError | None = None


class TestSync(BaseModel):
    """Check a destination's credentials and reachability, writing nothing."""

    model_config = ConfigDict(extra="ignore")

    __test__ = False  # not a pytest class
    sync_id: UUID


class SyncTestReply(BaseModel):
    ok: bool
    detail: str


ALERT_TEST = "alert.test"
"""`<ns>.rpc.alert.test`: send a sample alert through every channel of a rule."""
NOTIFIER_CHANNELS = "alert.channels"
"""`<ns>.rpc.alert.channels`: which channel types the notifier can deliver."""


class TestAlert(BaseModel):
    """Send a sample alert through every channel of `alert_id`; nothing is recorded."""

    model_config = ConfigDict(extra="ignore")

    __test__ = False  # not a pytest class
    alert_id: UUID


class ChannelTestResult(BaseModel):
    channel_id: UUID
    type: str
    ok: bool
    detail: str


class AlertTestReply(BaseModel):
    ok: bool = Field(description="true when every channel accepted the sample")
    detail: str
    channels: list[ChannelTestResult] = []


class NotifierChannels(BaseModel):
    """Ask the notifier what it can deliver (the api refuses an email channel when no SMTP
    server is configured there, which only the notifier knows)."""

    model_config = ConfigDict(extra="ignore")


class NotifierChannelsReply(BaseModel):
    types: list[str] = Field(description="channel types the notifier can deliver now")
