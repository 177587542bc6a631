"""The event contract: the code's events and the published AsyncAPI document agree.

`test_docs_current` proves the document is what the generator makes today; this proves that
what the generator makes is what the producers send. For each event of the catalog:
- the document has a channel on its subject carrying a CloudEvents message named by its type,
  with `Content-Type: application/cloudevents+json`, and nothing else claims to be an event;
- an event serialised exactly as the outbox stores it (`CloudEvent.wrap(...).to_json()`) with
  every optional field filled, and one with none filled, validate against the published schema
  (`jsonschema`, formats checked);
- a tampered event (a required field dropped, a wrong type, a wrong `type`) does not, so the
  checks above cannot pass by accepting anything.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID, uuid4

import orjson
import pytest
from pydantic import BaseModel

from certforge.common.contracts.catalog import CATALOG, SUBJECTS, Contract
from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.template import San
from event_contract_kit import event_channels, problems, stream_messages

EVENTS = [c for c in CATALOG if c.stream == SUBJECTS.events_stream]
STREAMED = [c for c in CATALOG if c.stream is not None]


def sample(annotation: Any, *, full: bool) -> Any:
    """A valid value of `annotation` (the field types our contracts use)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return sample(inner[0], full=full) if full or len(inner) == len(args) else None
    if origin is Literal:
        return args[0]
    if origin is list:
        return [sample(args[0], full=full)] if full else []
    if origin is dict:
        return {"key": "value"} if full else {}
    if annotation is San:
        return San(type="dns", value="web.shop.example")
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return next(iter(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return build(annotation, full=full)
    return {
        UUID: uuid4(),
        str: "text",
        int: 3,
        bool: True,
        float: 1.5,
        datetime: datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    }[annotation]


def build(model: type[BaseModel], *, full: bool) -> Any:
    values = {
        name: sample(field.annotation, full=full)
        for name, field in model.model_fields.items()
        if full or field.is_required()
    }
    return model(**values)


def wire(contract: Contract, *, full: bool) -> dict[str, Any]:
    """The event as the outbox stores and the relay publishes it."""
    data = build(contract.model, full=full)
    assert isinstance(data, MessageData)
    event = CloudEvent.wrap(
        data,
        source="/certforge/test",
        subject=str(uuid4()) if full else None,
        traceparent=f"00-{'a' * 32}-{'b' * 16}-01" if full else None,
    )
    decoded: dict[str, Any] = orjson.loads(event.to_json())
    return decoded


def test_every_event_is_a_published_cloudevents_type_on_its_subject() -> None:
    channels = event_channels()
    expected = {c.event_type: c.subject for c in EVENTS}
    assert channels == expected, "docs/asyncapi.json and the catalog disagree: run `make docs`"


def test_every_stream_message_says_it_is_a_cloudevent() -> None:
    published = stream_messages()
    assert set(published) == {c.event_type for c in STREAMED}
    for message in published.values():
        assert message["headers"]["properties"]["Content-Type"]["const"] == (
            "application/cloudevents+json"
        )


@pytest.mark.parametrize("full", [True, False], ids=["all-optional-fields", "required-only"])
@pytest.mark.parametrize("contract", STREAMED, ids=lambda c: c.event_type)
def test_what_producers_send_validates_against_the_published_schema(
    contract: Contract, full: bool
) -> None:
    event = wire(contract, full=full)
    assert problems(event) == []


@pytest.mark.parametrize("contract", EVENTS, ids=lambda c: c.event_type)
def test_a_tampered_event_does_not_validate(contract: Contract) -> None:
    event = wire(contract, full=True)
    required = [n for n, f in contract.model.model_fields.items() if f.is_required()]
    dropped = {**event, "data": {k: v for k, v in event["data"].items() if k != required[0]}}
    assert any(required[0] in p for p in problems(dropped)), problems(dropped)
    assert problems({**event, "id": "not-a-uuid"})
    assert problems({**event, "specversion": "0.3"})
    del event["time"]
    assert problems(event)
    # Relabelled as an event whose data needs a field this one lacks (a renewal relabelled
    # `issued` is still a valid `issued`: its data is a superset).
    sent = wire(contract, full=True)
    other = next(
        c
        for c in EVENTS
        if any(n not in sent["data"] for n, f in c.model.model_fields.items() if f.is_required())
    )
    assert problems({**sent, "type": other.event_type})
