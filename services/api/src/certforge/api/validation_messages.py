"""Validation errors that say what to do, not what pydantic found.

FastAPI reports a form body as "Input should be a valid dictionary", a JSON syntax error as a
character offset in the field list, an unknown field as "Extra inputs are not permitted" and a
SAN given as a string as a model-type error. A caller fixes each faster when told the rule
and the nearest right answer: send JSON, line 3 column 14, did you mean `ttl`, a SAN is
`{"type": "dns", "value": …}`. Pure functions of pydantic's error dicts; `problems.py` maps the
result to a problem document.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

from pydantic import BaseModel

from certforge.common.errors import FieldError

SYNONYMS: dict[str, str] = {
    "validity": "ttl",
    "lifetime": "ttl",
    "duration": "ttl",
    "expiry": "ttl",
    "cn": "common_name",
    "commonname": "common_name",
    "san": "sans",
    "alt_names": "sans",
    "subject_alt_names": "sans",
    "dns_names": "sans",
    "key_type": "key_algorithm",
    "algorithm": "key_algorithm",
    "tags": "metadata",
    "labels": "metadata",
}
"""Names callers bring from other CAs' APIs, and ours; used only when ours exists there."""

SAN_SHAPE = (
    'a SAN is an object {"type": "dns", "value": "www.example.com"}; '
    "type is one of dns, ip, email, uri"
)


@dataclass(frozen=True)
class JsonSyntaxError:
    line: int
    column: int
    reason: str

    def message(self) -> str:
        return f"not valid JSON at line {self.line}, column {self.column}: {self.reason}"


def json_syntax_error(document: object, position: int, reason: str) -> JsonSyntaxError:
    """Line and column (1-based) of `position` in the body that failed to parse."""
    text = document.decode(errors="replace") if isinstance(document, bytes) else str(document)
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return JsonSyntaxError(line, column, reason)


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json` or any `application/*+json`, parameters ignored (FastAPI's rule)."""
    if not content_type:
        return True  # FastAPI parses a body without a Content-Type as JSON
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def explain(
    errors: Iterable[dict[str, Any]], body_model: type[BaseModel] | None
) -> list[FieldError]:
    """One `FieldError` per pydantic error, worded to be acted on."""
    return [FieldError(field_path(err.get("loc", ())), _message(err, body_model)) for err in errors]


def _message(err: dict[str, Any], body_model: type[BaseModel] | None) -> str:
    kind = err.get("type", "")
    loc = tuple(err.get("loc", ()))
    message = str(err.get("msg", "invalid"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "extra_forbidden":
        known = _fields_at(body_model, loc[1:-1]) if loc[:1] == ("body",) else None
        hint = suggestion(str(loc[-1]), known or ())
        return f"unknown field; did you mean `{hint}`?" if hint else "unknown field"
    if _is_san(loc) and kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{SAN_SHAPE} (got {type(err.get('input')).__name__})"
    return message


def suggestion(name: str, known: Iterable[str]) -> str | None:
    """Our field a caller most likely meant by `name`, if any is close enough."""
    known = list(known)
    if not known:
        return None
    synonym = SYNONYMS.get(name.lower())
    if synonym in known:
        return synonym
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    return close[0] if close else None


def _is_san(loc: tuple[Any, ...]) -> bool:
    """`body.sans.<index>`: one SAN of a request."""
    return len(loc) >= 3 and loc[-2] == "sans" and isinstance(loc[-1], int)


def _fields_at(model: type[BaseModel] | None, path: Sequence[Any]) -> list[str] | None:
    """The field names of the model found by walking `path` from `model` (list indices and
    dict keys pass through to the item type); None where the path leaves models."""
    current: Any = model
    for step in path:
        current = model_in(current)
        if current is None:
            return None
        if isinstance(step, int):
            continue  # a list index: `_item_type` already stepped into the item type
        if step not in current.model_fields:
            return None  # a mapping key, or a name the model does not know
        current = current.model_fields[step].annotation
        current = _item_type(current)
    model_type = model_in(current)
    return list(model_type.model_fields) if model_type is not None else None


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation names: `Model`, or the model inside `Model | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):  # Optional[Model], Model | None
        found = model_in(arg)
        if found is not None:
            return found
    return None


def _item_type(annotation: Any) -> Any:
    """The item type of `list[X]`, `X | None` unwrapped; the annotation itself otherwise."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return args[0] if args else annotation
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _item_type(arg)
    return annotation
