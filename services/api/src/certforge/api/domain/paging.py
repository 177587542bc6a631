"""One paging convention for every list the API serves, the one certificate requests set first:
`?limit=` (1 to 500, default 50) and `?cursor=` in, `{"items": [...], "next_cursor": ...}` out,
newest first by `(created_at, id)`.

Keyset pagination, not offsets: a row created or deleted while a client walks the pages neither
repeats nor hides another, and a deep page costs what the first one does. The cursor is the
last row's `(created_at, id)` (`schemas.common.encode_cursor`), opaque to clients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import Depends, Query
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.schemas.common import decode_cursor, encode_cursor
from certforge.common.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="items per page (newest first)")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="`next_cursor` of the previous page"),
    ] = None,
) -> PageRequest:
    return PageRequest(limit, cursor)


PageDep = Annotated[PageRequest, Depends(page_request)]
"""The `limit` and `cursor` query parameters of a list endpoint."""


def after_cursor(
    created: Any, row_id: Any, cursor: str | None, id_type: Callable[[str], Any] = UUID
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clause that starts a newest-first page after `cursor` (none for the first).
    `id_type` reads the cursor's row id (a UUID for most tables; `str` for text keys)."""
    if cursor is None:
        return []
    created_at, last_id = decode_cursor(cursor)
    try:
        last = id_type(last_id)
    except ValueError:
        raise InvalidInput.on_field("cursor", "not a cursor returned by this API") from None
    if created_at.tzinfo is None:  # never made by encode_cursor: the page would be a guess
        raise InvalidInput.on_field("cursor", "not a cursor returned by this API")
    return [(created < created_at) | ((created == created_at) & (row_id < last))]


async def keyset_page(
    session: AsyncSession,
    query: Any,
    created: Any,
    row_id: Any,
    page: PageRequest,
    key: Callable[[Any], tuple[datetime, Any]],
    id_type: Callable[[str], Any] = UUID,
) -> tuple[list[Any], str | None]:
    """One page of `query`'s rows, newest first by (`created`, `row_id`), and the next cursor
    (None on the last page). `key` reads a row's (created_at, id) for the cursor."""
    ordered = (
        query.where(*after_cursor(created, row_id, page.cursor, id_type))
        .order_by(created.desc(), row_id.desc())
        .limit(page.limit + 1)
    )
    rows: Sequence[Any] = list(await session.exec(ordered))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(*key(rows[-1])) if more and rows else None
    return list(rows), next_cursor
