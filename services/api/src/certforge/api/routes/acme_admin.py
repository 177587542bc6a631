"""The REST API around ACME: enrollment settings and EAB keys of an attached profile, and the
accounts and orders ACME clients made (the protocol itself is served under `/acme`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response

from certforge.api.deps import ActorDep, AuditDep, ContextDep, SessionDep
from certforge.api.domain import acme_admin
from certforge.api.domain.acme_enrollment import public_origin
from certforge.api.domain.paging import PageDep
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.acme import (
    AccountStatus,
    AcmeAccountDetail,
    AcmeAccountPublic,
    AcmeEnrollment,
    AcmeEnrollmentPublic,
    AcmeOrderDetail,
    AcmeOrderPublic,
    EabKeyCreate,
    EabKeyPublic,
    NewEabKey,
    OrderStatus,
)
from certforge.api.schemas.applications import AttachmentPublic
from certforge.api.schemas.common import Page

router = APIRouter(prefix=API_PREFIX, tags=["acme administration"])

_ENROLLMENT = "/applications/{app}/profiles/{profile}/enrollment/acme"


@router.put(_ENROLLMENT, name="application.enrollment.acme.put")
async def put_acme_enrollment(
    app: str,
    profile: str,
    body: AcmeEnrollment,
    request: Request,
    session: SessionDep,
    audit: AuditDep,
) -> AttachmentPublic:
    """ACME enrollment on an attached profile (application-admin or product-admin); the
    answer's `acme.directory_url` is what ACME clients are pointed at."""
    return await acme_admin.put_enrollment(
        session, audit, app, profile, body, public_origin(request)
    )


@router.get(_ENROLLMENT, name="application.enrollment.acme.get")
async def get_acme_enrollment(
    app: str, profile: str, request: Request, session: SessionDep, actor: ActorDep
) -> AcmeEnrollmentPublic:
    return await acme_admin.get_enrollment(session, actor, app, profile, public_origin(request))


@router.post(
    f"{_ENROLLMENT}/eab-keys", status_code=201, name="application.enrollment.acme.eab_key.create"
)
async def create_eab_key(
    app: str,
    profile: str,
    session: SessionDep,
    audit: AuditDep,
    context: ContextDep,
    response: Response,
    body: EabKeyCreate = Body(default_factory=EabKeyCreate),
) -> NewEabKey:
    """A new External Account Binding key: give `key_id` and `hmac_key` to one ACME client
    (e.g. certbot's `--eab-kid` and `--eab-hmac-key`). The HMAC key is shown only here."""
    created, app_slug, profile_slug = await acme_admin.create_eab_key(
        session, audit, context.leaf_keys, app, profile, body.name
    )
    response.headers["Location"] = (
        f"{API_PREFIX}/applications/{app_slug}/profiles/{profile_slug}"
        f"/enrollment/acme/eab-keys/{created.key_id}"
    )
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get(f"{_ENROLLMENT}/eab-keys", name="application.enrollment.acme.eab_key.list")
async def list_eab_keys(
    app: str, profile: str, session: SessionDep, actor: ActorDep, page: PageDep
) -> Page[EabKeyPublic]:
    """Newest first; the HMAC keys are never shown again."""
    return await acme_admin.list_eab_keys(session, actor, app, profile, page)


@router.get(f"{_ENROLLMENT}/eab-keys/{{key_id}}", name="application.enrollment.acme.eab_key.get")
async def get_eab_key(
    app: str, profile: str, key_id: str, session: SessionDep, actor: ActorDep
) -> EabKeyPublic:
    return await acme_admin.get_eab_key(session, actor, app, profile, key_id)


@router.delete(
    f"{_ENROLLMENT}/eab-keys/{{key_id}}",
    status_code=204,
    name="application.enrollment.acme.eab_key.revoke",
)
async def revoke_eab_key(
    app: str, profile: str, key_id: str, session: SessionDep, audit: AuditDep
) -> Response:
    """Revoke: the key binds no new account (an account already bound keeps working; deactivate
    it to stop it). Revoking again changes nothing."""
    await acme_admin.revoke_eab_key(session, audit, app, profile, key_id, datetime.now(UTC))
    return Response(status_code=204)


@router.get("/applications/{app}/acme/accounts", name="acme.account.list")
async def list_acme_accounts(
    app: str,
    session: SessionDep,
    actor: ActorDep,
    profile: str | None = None,
    status: AccountStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Page[AcmeAccountPublic]:
    """Newest first."""
    items, next_cursor = await acme_admin.list_accounts(
        session, actor, app, acme_admin.AccountFilter(profile, status, limit, cursor)
    )
    return Page[AcmeAccountPublic](items=items, next_cursor=next_cursor)


@router.get("/applications/{app}/acme/accounts/{account_id}", name="acme.account.get")
async def get_acme_account(
    app: str, account_id: UUID, session: SessionDep, actor: ActorDep
) -> AcmeAccountDetail:
    return await acme_admin.get_account(session, actor, app, account_id)


@router.post(
    "/applications/{app}/acme/accounts/{account_id}/deactivate", name="acme.account.deactivate"
)
async def deactivate_acme_account(
    app: str, account_id: UUID, session: SessionDep, audit: AuditDep
) -> AcmeAccountDetail:
    """Deactivate the account (application-admin): its key can then do nothing at the ACME
    endpoints. Final; deactivating again changes nothing."""
    return await acme_admin.deactivate_account(session, audit, app, account_id, datetime.now(UTC))


@router.get("/applications/{app}/acme/orders", name="acme.order.list")
async def list_acme_orders(
    app: str,
    session: SessionDep,
    actor: ActorDep,
    account: UUID | None = None,
    profile: str | None = None,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Page[AcmeOrderPublic]:
    """Newest first."""
    items, next_cursor = await acme_admin.list_orders(
        session, actor, app, acme_admin.OrderFilter(account, profile, status, limit, cursor)
    )
    return Page[AcmeOrderPublic](items=items, next_cursor=next_cursor)


@router.get("/applications/{app}/acme/orders/{order_id}", name="acme.order.get")
async def get_acme_order(
    app: str, order_id: UUID, session: SessionDep, actor: ActorDep
) -> AcmeOrderDetail:
    """The order with its authorizations and their challenges."""
    return await acme_admin.get_order(session, actor, app, order_id)
