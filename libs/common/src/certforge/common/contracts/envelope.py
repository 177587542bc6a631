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

    specversion: str = Field(default=SPEC_VERSION, description="CloudEvents version: 1.0")
    id: UUID = Field(
        default_factory=uuid4,
        description="unique per event (with `source`); also the `Nats-Msg-Id` header, so "
        "JetStream stores an event published twice only once: consumers de-duplicate on it",
    )
    source: str = Field(description="the service that produced it, e.g. /certforge/issuer")
    type: str = Field(
        description="what happened, versioned: io.certforge.<kind>.<event>.v<N>; a breaking "
        "change is a new version"
    )
    subject: str | None = Field(
        default=None, description="the id of the object the event is about (omitted if none)"
    )
    time: datetime = Field(
        default_factory=lambda: datetime.now(UTC), description="when it happened (RFC 3339)"
    )
    datacontenttype: str = Field(default="application/json", description="`data` is a JSON object")
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context extension: the trace of the change that caused it "
        "(omitted outside a trace)",
    )
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
