"""Lost-update protection for admin objects: `ETag` on reads, `If-Match` on PATCH and PUT.

The entity tag is a digest of the object's public representation (the JSON a GET returns), so
it changes exactly when something a client can see changes, needs no version column, and is
the same from every api replica. It is a strong tag: RFC 9110 compares `If-Match` strongly.

`If-Match` absent: the change applies unconditionally, as it always did (the common convention:
GitHub, Kubernetes' PATCH without resourceVersion); a client that wants protection sends the tag
it read. Present: the object's row is locked (`SELECT … FOR UPDATE`) for the rest of the
transaction, its current representation is read again and compared, and a mismatch is a
`StaleVersion` (412) that changes nothing. The lock closes the gap between the comparison and
the write, so two clients holding the same tag cannot both succeed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header, Response
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.errors import StaleVersion


def etag_of(representation: BaseModel) -> str:
    digest = hashlib.sha256(representation.model_dump_json().encode()).hexdigest()
    return f'"{digest[:32]}"'


ModelT = TypeVar("ModelT", bound=BaseModel)


def tagged(response: Response, representation: ModelT) -> ModelT:
    """`representation`, with its `ETag` set on `response`."""
    response.headers["ETag"] = etag_of(representation)
    return representation


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="the `ETag` of the version read; 412 if the object changed since. "
        "Absent: the change applies unconditionally.",
    ),
]


def _listed(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def check(if_match: str, current: str) -> None:
    """Raise `StaleVersion` unless `current` is one of the tags in `if_match` (or it is `*`)."""
    tags = _listed(if_match)
    if "*" in tags or current in tags:
        return
    raise StaleVersion.on_field(
        "If-Match",
        "the object changed since this version was read: GET it again, reapply the change "
        "and send the new ETag",
    )


async def guard(
    session: AsyncSession,
    if_match: str | None,
    read: Callable[[], Awaitable[ModelT]],
    lock: Callable[[ModelT], Any],
) -> None:
    """Before a PATCH or PUT: nothing without `If-Match`; else lock the object's row with the
    statement `lock(representation)` builds (`select(T).where(...)`), read it again and
    compare. The caller's update then commits in the same transaction, releasing the lock."""
    if if_match is None:
        return
    first = await read()
    statement = lock(first).with_for_update().execution_options(populate_existing=True)
    await session.exec(statement)
    check(if_match, etag_of(await read()))
