"""The published event contract as an outside consumer sees it: `docs/asyncapi.json`.

Tests judge events with the checked-in document and the `jsonschema` package, never with our
pydantic models, so a model and a document that drift apart cannot agree by construction.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[1]
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
CLOUDEVENTS_JSON = "application/cloudevents+json"


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ASYNCAPI.read_text(encoding="utf-8"))
    return loaded


def stream_messages(doc: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every CloudEvents message of the document, by its CloudEvents type (the message name)."""
    doc = doc or document()
    return {
        message["name"]: message
        for message in doc["components"]["messages"].values()
        if message.get("contentType") == CLOUDEVENTS_JSON
    }


def event_channels(doc: dict[str, Any] | None = None) -> dict[str, str]:
    """The address of every events-stream channel, by the CloudEvents type it carries."""
    doc = doc or document()
    out: dict[str, str] = {}
    for channel in doc["channels"].values():
        if ".evt." not in channel["address"]:
            continue
        for ref in channel["messages"].values():
            message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
            out[message["name"]] = channel["address"]
    return out


def validator_for(event_type: str, doc: dict[str, Any] | None = None) -> Draft202012Validator:
    """A JSON Schema validator (with format checks) for the whole envelope of `event_type`."""
    doc = doc or document()
    payload = stream_messages(doc)[event_type]["payload"]
    schema = {"$ref": payload["$ref"], "components": doc["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(event: dict[str, Any], doc: dict[str, Any] | None = None) -> list[str]:
    """Why `event` (a decoded CloudEvent) does not match its published schema; [] when it does."""
    doc = doc or document()
    event_type = event.get("type")
    if event_type not in stream_messages(doc):
        return [f"type {event_type!r} is not a published CloudEvents type"]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(envelope)'}: {e.message}"
        for e in validator_for(str(event_type), doc).iter_errors(event)
    ]
