"""Shapes shared by every resource: pagination and slugs."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from certforge.common.errors import InvalidInput

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN, max_length=63),
    Field(description="lower-case letters, digits and hyphens; not a UUID", examples=["shop"]),
]


def _no_control_characters(value: str) -> str:
    # PostgreSQL cannot store NUL, and a name with control characters only confuses people.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


PRINTABLE = "^[^\\x00-\\x1f\\x7f]*$"
"""No control characters: what `_no_control_characters` refuses, for the document."""
PRINTABLE_WORD = "^[^\\x00-\\x1f\\x7f]*[^\\s\\x7f][^\\x00-\\x1f\\x7f]*$"
"""No control characters and not only spaces (a name is stripped, then must not be empty)."""

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(_no_control_characters),
    Field(json_schema_extra={"pattern": PRINTABLE_WORD}),
]
OptionalName = Annotated[
    str,
    StringConstraints(max_length=128),
    AfterValidator(_no_control_characters),
    Field(json_schema_extra={"pattern": PRINTABLE}),
]
Description = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_no_nul)]

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` to get the next page; absent on the last"
    )


def examples(
    *bodies: dict[str, Any],
    extra: Literal["forbid"] | None = None,
    rules: dict[str, Any] | None = None,
) -> ConfigDict:
    """A request body's examples for the OpenAPI document (what "Try it out" starts from),
    and `rules` across its fields as JSON schema keywords (`if`/`then`/`else`).
    Pydantic merges this with the parent's configuration, so `Strict` stays strict;
    `tests/unit/test_openapi_examples.py` checks that every example is a valid body."""
    config = ConfigDict(json_schema_extra={"examples": list(bodies), **(rules or {})})
    if extra is not None:
        config["extra"] = extra
    return config


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error and not a silent default."""

    model_config = ConfigDict(extra="forbid")


def encode_cursor(created_at: datetime, row_id: UUID | int | str) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = orjson.loads(raw)
        return datetime.fromisoformat(created_at), str(row_id)
    except Exception as exc:
        raise InvalidInput.on_field("cursor", "not a cursor returned by this API") from exc
