"""Lookups, tenant access and commits shared by the resource modules.

Tenant isolation lives here: `application_for` answers 404 (not 403) to a caller who is not a
member, so one application's members cannot even learn that another application exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.auth import Actor
from certforge.api.schemas.common import SLUG_PATTERN
from certforge.common.db.tables import Application, Identity, Profile
from certforge.common.domain import Role
from certforge.common.errors import Conflict, Forbidden, NotFound

TableT = TypeVar("TableT", bound=SQLModel)

_SLUG = re.compile(SLUG_PATTERN)

READ_ROLES = frozenset(Role)
ADMIN_ROLES = frozenset({Role.APPLICATION_ADMIN})
OPERATE_ROLES = frozenset({Role.APPLICATION_ADMIN, Role.OPERATOR})


def now() -> datetime:
    return datetime.now(UTC)


def as_uuid(ref: str) -> UUID | None:
    try:
        return UUID(ref)
    except ValueError:
        return None


async def get_or_404(
    session: AsyncSession, model: type[TableT], row_id: UUID, what: str, field: str = "id"
) -> TableT:
    row = await session.get(model, row_id)
    if row is None:
        raise NotFound.on_field(field, f"no {what} with id {row_id}")
    return row


async def of_identity(
    session: AsyncSession, model: type[TableT], identity_id: UUID
) -> list[TableT]:
    """An identity's rows of `model` (tokens, auth methods, certificate bindings), oldest
    first; 404 on `identity_id` when there is no such identity."""
    await get_or_404(session, Identity, identity_id, "identity", "identity_id")
    rows = await session.exec(
        select(model)
        .where(col(model.identity_id) == identity_id)  # type: ignore[attr-defined]
        .order_by(col(model.created_at))  # type: ignore[attr-defined]
    )
    return list(rows)


def is_reference(ref: str) -> bool:
    """Whether `ref` can name a row at all (an id or a well-formed slug); anything else, NUL
    bytes included, names nothing and need not reach the database."""
    return as_uuid(ref) is not None or _SLUG.fullmatch(ref) is not None


async def by_slug_or_id(
    session: AsyncSession, model: type[Application] | type[Profile], ref: str, what: str, field: str
) -> Any:
    row_id = as_uuid(ref)
    condition = col(model.id) == row_id if row_id else col(model.slug) == ref
    # A reference that is neither an id nor a slug names nothing (and may hold a NUL that
    # PostgreSQL would refuse): not found, without asking the database.
    row = (
        (await session.exec(select(model).where(condition))).first() if is_reference(ref) else None
    )
    if row is None:
        raise NotFound.on_field(field, f"no {what} {ref!r}")
    return row


async def application_for(
    session: AsyncSession, actor: Actor, ref: str, roles: Iterable[Role]
) -> Application:
    """The application `ref` if `actor` may act on it with one of `roles`; else 404 or 403."""
    app: Application = await by_slug_or_id(session, Application, ref, "application", "app")
    check_access(actor, app.id, app.slug, ref, roles)
    return app


def check_access(actor: Actor, app_id: UUID, slug: str, ref: str, roles: Iterable[Role]) -> None:
    """Whether `actor` may act on application `app_id` (named `ref`) with one of `roles`:
    404 to a non-member, as if it did not exist; 403 to a member whose role is too weak."""
    if actor.is_product_admin:
        return
    role = actor.role_in(app_id)
    if role is None:
        raise NotFound.on_field("app", f"no application {ref!r}")
    if role not in set(roles):
        raise Forbidden(f"your role {role.value!r} in {slug!r} does not allow this action")


async def commit(session: AsyncSession, *, duplicate: tuple[str, str] | None = None) -> None:
    """Commit; a unique violation becomes a 409 naming `duplicate` = (field, message)."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if state == "23505" and duplicate is not None:
            raise Conflict.on_field(*duplicate) from exc
        if state == "23503":
            raise Conflict("the resource is still referenced by others") from exc
        raise
