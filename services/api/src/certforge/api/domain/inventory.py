"""The certificate inventory: search one application's certificates, or all the caller may see.

Keyset pagination on (sort column, id): a page never repeats or skips a certificate when
others are issued meanwhile, and deep pages cost what the first one does. The cursor carries
the sort it was made for, so it cannot be replayed against another order. `total` counts every
match of the filters (not only the rest after the cursor), so it is the same on every page.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.auth import Actor
from certforge.api.domain.certificates import certificate_view
from certforge.api.domain.common import READ_ROLES, application_for, by_slug_or_id
from certforge.api.schemas.inventory import InventoryPage, InventorySort
from certforge.common.db.tables import Application, Certificate, Profile
from certforge.common.domain import CertificateStatus, KeyAlgorithm
from certforge.common.errors import InvalidInput, Unprocessable

_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,64}$")  # as `certforge.common.issuance.MetadataKey`
TAG_PATTERN = r"^[A-Za-z0-9_.\-/]{1,64}(?::[^\x00]*)?$"
"""A `tag` filter as `_tag_condition` reads it, for the parameter's schema: `key` or
`key:value`, a metadata key, no NUL."""


def tag_filter(tag: str) -> str:
    """Refuse a `tag` filter the schema refuses, in words (a validator of the parameter)."""
    if not re.fullmatch(TAG_PATTERN, tag):
        raise ValueError("expected key or key:value with a metadata key, and no NUL")
    return tag


@dataclass(frozen=True)
class InventoryFilter:
    statuses: tuple[CertificateStatus, ...] = ()
    profile: str | None = None
    q: str | None = None
    expires_before: datetime | None = None
    expires_after: datetime | None = None
    key_algorithm: KeyAlgorithm | None = None
    tags: tuple[str, ...] = ()
    sort: InventorySort = InventorySort.NOT_AFTER
    limit: int = 50
    cursor: str | None = None


async def search_application(
    session: AsyncSession, actor: Actor, app_ref: str, f: InventoryFilter
) -> InventoryPage:
    """The certificates of one application; any member role (404 for non-members)."""
    app = await application_for(session, actor, app_ref, READ_ROLES)
    return await _search(session, [col(Certificate.application_id) == app.id], f)


async def search_all(
    session: AsyncSession, actor: Actor, app_ref: str | None, f: InventoryFilter
) -> InventoryPage:
    """Across applications: all of them for product admins, else those the caller belongs to."""
    if app_ref is not None:
        return await search_application(session, actor, app_ref, f)
    if actor.is_product_admin:
        return await _search(session, [], f)
    visible = [app_id for app_id, role in actor.roles.items() if role in READ_ROLES]
    if not visible:
        return InventoryPage(items=[], next_cursor=None, total=0)
    return await _search(session, [col(Certificate.application_id).in_(visible)], f)


async def _search(
    session: AsyncSession, scope: list[sa.ColumnElement[bool]], f: InventoryFilter
) -> InventoryPage:
    where = scope + await _conditions(session, f)
    total: int = (
        await session.exec(select(func.count()).select_from(Certificate).where(*where))
    ).one()
    sort_column = col(getattr(Certificate, f.sort.column))
    id_column = col(Certificate.id)
    query = (
        select(Certificate, Application, Profile)
        .join(Application, col(Application.id) == col(Certificate.application_id))
        .join(Profile, col(Profile.id) == col(Certificate.profile_id))
        .where(*where)
    )
    if f.cursor is not None:
        value, last_id = decode_cursor(f.cursor, f.sort)
        after = sa.tuple_(sort_column, id_column)
        query = query.where(
            after < (value, last_id) if f.sort.descending else after > (value, last_id)
        )
    order = (
        (sort_column.desc(), id_column.desc()) if f.sort.descending else (sort_column, id_column)
    )
    rows = list(await session.exec(query.order_by(*order).limit(f.limit + 1)))
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    next_cursor = None
    if more and rows:
        last = rows[-1][0]
        next_cursor = encode_cursor(f.sort, getattr(last, f.sort.column), last.id)
    return InventoryPage(
        items=[certificate_view(c, app, profile) for c, app, profile in rows],
        next_cursor=next_cursor,
        total=total,
    )


async def _conditions(session: AsyncSession, f: InventoryFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if f.statuses:
        where.append(col(Certificate.status).in_([s.value for s in f.statuses]))
    if f.profile is not None:
        profile: Profile = await by_slug_or_id(session, Profile, f.profile, "profile", "profile")
        where.append(col(Certificate.profile_id) == profile.id)
    if f.q is not None:
        where.append(_matches_name(_text(f.q, "q")))
    for name, bound in (("expires_before", f.expires_before), ("expires_after", f.expires_after)):
        if bound is not None and bound.tzinfo is None:
            raise Unprocessable.on_field(name, "must carry a timezone, e.g. 2030-01-01T00:00:00Z")
    if f.expires_before is not None:
        where.append(col(Certificate.not_after) < f.expires_before)
    if f.expires_after is not None:
        where.append(col(Certificate.not_after) >= f.expires_after)
    if f.key_algorithm is not None:
        where.append(col(Certificate.key_algorithm) == f.key_algorithm.value)
    where.extend(_tag_condition(tag) for tag in f.tags)
    return where


def _text(value: str, field: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise Unprocessable.on_field(field, "must not contain NUL characters")
    return value


def _matches_name(q: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring of the common name or of any SAN's value."""
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", q) + "%"
    san = (
        func.jsonb_array_elements(col(Certificate.sans))
        .table_valued(sa.column("value", JSONB))
        .render_derived(name="san")
    )
    in_sans = select(1).select_from(san).where(san.c.value["value"].astext.ilike(pattern))
    return sa.or_(col(Certificate.common_name).ilike(pattern), in_sans.exists())


def _tag_condition(tag: str) -> sa.ColumnElement[bool]:
    """`key:value` matches that metadata entry; a bare `key` matches any value of it."""
    key, has_value, value = _text(tag, "tag").partition(":")
    if not _TAG_KEY.fullmatch(key):
        raise Unprocessable.on_field("tag", "expected key:value with a metadata key")
    tags: Any = col(Certificate.tags)
    condition: sa.ColumnElement[bool] = (
        tags.contains({key: value}) if has_value else tags.has_key(key)
    )
    return condition


def encode_cursor(sort: InventorySort, value: datetime, row_id: UUID) -> str:
    raw = orjson.dumps([sort.value, value.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: InventorySort) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, row_id = orjson.loads(raw)
        parsed = (datetime.fromisoformat(value), UUID(row_id))
        if parsed[0].tzinfo is None:
            raise ValueError("a cursor's timestamp carries its timezone")
    except Exception as exc:
        raise InvalidInput.on_field("cursor", "not a cursor returned by this API") from exc
    if made_for != sort.value:
        raise InvalidInput.on_field("cursor", "this cursor was made for another sort order")
    return parsed
