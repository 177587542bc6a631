"""The certificate inventory: one application's certificates, or all the caller may see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, WithJsonSchema

from certforge.api.deps import ActorDep, SessionDep
from certforge.api.domain import inventory
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.inventory import InventoryPage, InventorySort
from certforge.common.domain import CertificateStatus, KeyAlgorithm

router = APIRouter(prefix=API_PREFIX, tags=["certificates"])
_TAG = {"type": "string", "pattern": inventory.TAG_PATTERN}


def _filter(
    status: Annotated[
        list[CertificateStatus] | None, Query(description="repeat to match any of several")
    ] = None,
    profile: Annotated[str | None, Query(description="profile slug or id")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            description="case-insensitive substring of the common name or of any SAN value",
        ),
    ] = None,
    expires_before: Annotated[datetime | None, Query(description="not_after < this")] = None,
    expires_after: Annotated[datetime | None, Query(description="not_after >= this")] = None,
    key_algorithm: KeyAlgorithm | None = None,
    tag: Annotated[
        list[Annotated[str, AfterValidator(inventory.tag_filter), WithJsonSchema(_TAG)]] | None,
        Query(
            max_length=32,
            description="metadata `key:value` (or a bare `key`: any value); repeat to require all",
        ),
    ] = None,
    sort: Annotated[
        InventorySort,
        Query(
            description="`not_after` (soonest expiry first) or `created_at`; a leading `-` reverses"
        ),
    ] = InventorySort.NOT_AFTER,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> inventory.InventoryFilter:
    return inventory.InventoryFilter(
        statuses=tuple(status or ()),
        profile=profile,
        q=q,
        expires_before=expires_before,
        expires_after=expires_after,
        key_algorithm=key_algorithm,
        tags=tuple(tag or ()),
        sort=sort,
        limit=limit,
        cursor=cursor,
    )


FilterDep = Annotated[inventory.InventoryFilter, Depends(_filter)]


@router.get("/applications/{app}/certificates", name="certificate.list")
async def list_certificates(
    app: str, session: SessionDep, actor: ActorDep, f: FilterDep
) -> InventoryPage:
    """Search the application's certificates (any member role); keys are never included."""
    return await inventory.search_application(session, actor, app, f)


@router.get("/certificates", name="certificate.search")
async def search_certificates(
    session: SessionDep,
    actor: ActorDep,
    f: FilterDep,
    application: Annotated[
        str | None, Query(description="restrict to one application (slug or id)")
    ] = None,
) -> InventoryPage:
    """Search across applications: product admins see every application's certificates,
    everyone else those of the applications where they hold a role."""
    return await inventory.search_all(session, actor, application, f)
