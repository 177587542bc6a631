"""CloudEvents 1.0 structured JSON envelope used for every command and event.

The envelope `id` is also the JetStream `Nats-Msg-Id`, so a message published twice inside the
stream's duplicate window is stored once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

import orjson
from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
"""The `Content-Type` header of every published envelope: the CloudEvents NATS binding's
structured mode, which tells a consumer the body is a whole CloudEvent (binary mode would put
the attributes in headers and only `data` in the body)."""


class MessageData(BaseModel):
    """Base of every message payload: ignores unknown fields so producers may add some."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]
    event_name: ClassVar[str] = ""
    """The last part of an event's subject (`certificate.issued`); empty for commands."""


DataT = TypeVar("DataT", bound=MessageData)


class CloudEvent(BaseModel, Generic[DataT]):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    specversion: str = SPEC_VERSION
    id: UUID = Field(default_factory=uuid4)
    source: str
    type: str
    subject: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    traceparent: str | None = Field(default=None, description="W3C trace context extension")
    data: DataT

    @classmethod
    def wrap(
        cls,
        data: DataT,
        *,
        source: str,
        subject: str | None = None,
        event_id: UUID | None = None,
        now: datetime | None = None,
        traceparent: str | None = None,
    ) -> CloudEvent[DataT]:
        return CloudEvent[DataT](
            id=event_id or uuid4(),
            source=source,
            type=data.event_type,
            subject=subject,
            time=now or datetime.now(UTC),
            traceparent=traceparent,
            data=data,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))
