"""ACME as application admins and auditors see it through the REST API: enrollment settings,
External Account Binding keys, and the accounts and orders that ACME clients made.

The protocol endpoints (`/acme/...`) create accounts and orders; this module reads them and
lets an admin switch enrollment on, hand out EAB keys, revoke them and deactivate accounts.
Every change is audited in its own transaction; no EAB secret ever reaches the audit log, a
log line or an error: it exists in clear only in the one answer that creates it.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.domain import acme_enrollment
from certforge.api.domain.applications import attached, attachment_public
from certforge.api.domain.common import (
    ADMIN_ROLES,
    READ_ROLES,
    application_for,
    by_slug_or_id,
    commit,
)
from certforge.api.domain.paging import PageRequest, after_cursor, keyset_page
from certforge.api.schemas.acme import (
    AccountStatus,
    AcmeAccountDetail,
    AcmeAccountPublic,
    AcmeAuthorizationPublic,
    AcmeChallengePublic,
    AcmeEnrollment,
    AcmeEnrollmentPublic,
    AcmeIdentifier,
    AcmeOrderDetail,
    AcmeOrderPublic,
    EabKeyPublic,
    EabKeyStatus,
    NewEabKey,
    OrderStatus,
)
from certforge.api.schemas.applications import AttachmentPublic
from certforge.api.schemas.common import Page, encode_cursor
from certforge.common.acme import b64url, eab_key_aad
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.tables import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeEabKey,
    AcmeOrder,
    Application,
    CertificateRequest,
    Profile,
)
from certforge.common.domain import RequestStatus
from certforge.common.errors import NotFound

EAB_KEY_BYTES = 32
"""RFC 8555 leaves the MAC key's size to the CA; 256 bits matches HS256's block of strength."""
EAB_KEY_ID_BYTES = 16
"""A 22-character URL-safe key id: unguessable, so knowing one key id says nothing of others."""
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


# --- enrollment settings ------------------------------------------------------------------


async def get_enrollment(
    session: AsyncSession, actor: Actor, ref: str, profile_ref: str, origin: str
) -> AcmeEnrollmentPublic:
    app, profile, attachment = await attached(session, actor, ref, profile_ref, READ_ROLES)
    return acme_enrollment.public(attachment, app.slug, profile.slug, origin)


async def put_enrollment(
    session: AsyncSession,
    audit: AuditScope,
    ref: str,
    profile_ref: str,
    body: AcmeEnrollment,
    origin: str,
) -> AttachmentPublic:
    app, profile, attachment = await attached(session, audit.actor, ref, profile_ref, ADMIN_ROLES)
    acme_enrollment.apply(attachment, body)
    session.add(attachment)
    audit.record(
        session,
        resource_type="attachment",
        resource_id=profile.id,
        application_id=app.id,
        details={"profile": profile.slug, "acme": body.model_dump(mode="json")},
    )
    await commit(session)
    return attachment_public(attachment, app, profile, origin)


# --- EAB keys -----------------------------------------------------------------------------


def eab_key_public(key: AcmeEabKey) -> EabKeyPublic:
    if key.revoked_at is not None:
        status = EabKeyStatus.REVOKED
    elif key.account_id is not None:
        status = EabKeyStatus.BOUND
    else:
        status = EabKeyStatus.UNUSED
    return EabKeyPublic(
        key_id=key.id,
        name=key.name,
        status=status,
        created_at=key.created_at,
        created_by=key.created_by,
        revoked_at=key.revoked_at,
        account_id=key.account_id,
        bound_at=key.bound_at,
    )


async def create_eab_key(
    session: AsyncSession,
    audit: AuditScope,
    keys: KeyRing,
    ref: str,
    profile_ref: str,
    name: str,
) -> tuple[NewEabKey, str, str]:
    """A new EAB key: (the answer with its secret, application slug, profile slug).

    The HMAC key must be recoverable to check a client's MAC, so it is sealed under the leaf key
    ring (bound to its key id), not hashed like API tokens."""
    app, profile, _ = await attached(session, audit.actor, ref, profile_ref, ADMIN_ROLES)
    key_id = secrets.token_urlsafe(EAB_KEY_ID_BYTES)
    hmac_key = secrets.token_bytes(EAB_KEY_BYTES)
    row = AcmeEabKey(
        id=key_id,
        application_id=app.id,
        profile_id=profile.id,
        name=name,
        encrypted_hmac_key=keys.encrypt(hmac_key, eab_key_aad(key_id)),
        key_kek_id=keys.active_kid,
        created_by=audit.actor.identity_id,
    )
    session.add(row)
    audit.record(
        session,
        resource_type="acme_eab_key",
        resource_id=key_id,
        application_id=app.id,
        details={"profile": profile.slug, "name": name},
        status_code=201,
    )
    await commit(session)
    created = NewEabKey(
        key_id=key_id, hmac_key=b64url(hmac_key), name=row.name, created_at=row.created_at
    )
    return created, app.slug, profile.slug


async def list_eab_keys(
    session: AsyncSession, actor: Actor, ref: str, profile_ref: str, page: PageRequest
) -> Page[EabKeyPublic]:
    """Newest first, without their secrets (one per ACME client onboarded: it grows, so it is
    paged like every other list; key ids are text, hence `id_type=str`)."""
    app, profile, _ = await attached(session, actor, ref, profile_ref, READ_ROLES)
    rows, cursor = await keyset_page(
        session,
        select(AcmeEabKey).where(
            AcmeEabKey.application_id == app.id, AcmeEabKey.profile_id == profile.id
        ),
        col(AcmeEabKey.created_at),
        col(AcmeEabKey.id),
        page,
        lambda k: (k.created_at, k.id),
        id_type=str,
    )
    return Page(items=[eab_key_public(k) for k in rows], next_cursor=cursor)


async def _eab_key(
    session: AsyncSession, app: Application, profile: Profile, key_id: str, *, lock: bool = False
) -> AcmeEabKey:
    # A key id is URL-safe base64; anything else (a NUL, a slash) names no key and need not
    # reach the database.
    if _KEY_ID.fullmatch(key_id) is None:
        raise NotFound.on_field("key_id", f"no EAB key {key_id!r}")
    query = select(AcmeEabKey).where(
        AcmeEabKey.id == key_id,
        AcmeEabKey.application_id == app.id,
        AcmeEabKey.profile_id == profile.id,
    )
    key = (await session.exec(query.with_for_update() if lock else query)).first()
    if key is None:
        raise NotFound.on_field(
            "key_id", f"no EAB key {key_id!r} in the ACME enrollment of {profile.slug!r}"
        )
    return key


async def get_eab_key(
    session: AsyncSession, actor: Actor, ref: str, profile_ref: str, key_id: str
) -> EabKeyPublic:
    app, profile, _ = await attached(session, actor, ref, profile_ref, READ_ROLES)
    return eab_key_public(await _eab_key(session, app, profile, key_id))


async def revoke_eab_key(
    session: AsyncSession,
    audit: AuditScope,
    ref: str,
    profile_ref: str,
    key_id: str,
    now: datetime,
) -> None:
    """Revoke: the key binds no new account. Idempotent like revoking an API token (the first
    revocation's time stays); an account already bound with it is left as it is."""
    app, profile, _ = await attached(session, audit.actor, ref, profile_ref, ADMIN_ROLES)
    key = await _eab_key(session, app, profile, key_id, lock=True)
    if key.revoked_at is None:
        key.revoked_at = now
        session.add(key)
    audit.record(
        session,
        resource_type="acme_eab_key",
        resource_id=key.id,
        application_id=app.id,
        details={
            "profile": profile.slug,
            "account_id": str(key.account_id) if key.account_id else None,
        },
        status_code=204,
    )
    await commit(session)


# --- accounts -----------------------------------------------------------------------------


def account_public(account: AcmeAccount, profile: Profile) -> AcmeAccountPublic:
    return AcmeAccountPublic(
        id=account.id,
        profile=profile.slug,
        status=AccountStatus(account.status),
        contact=[str(c) for c in account.contact],
        key_thumbprint=account.jwk_thumbprint,
        eab_key_id=account.eab_key_id,
        terms_agreed=account.terms_agreed,
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


@dataclass(frozen=True)
class AccountFilter:
    profile: str | None = None
    status: AccountStatus | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class OrderFilter:
    account: UUID | None = None
    profile: str | None = None
    status: OrderStatus | None = None
    limit: int = 50
    cursor: str | None = None


async def _profile_id(session: AsyncSession, ref: str | None) -> UUID | None:
    if ref is None:
        return None
    profile: Profile = await by_slug_or_id(session, Profile, ref, "profile", "profile")
    return profile.id


async def list_accounts(
    session: AsyncSession, actor: Actor, ref: str, f: AccountFilter
) -> tuple[list[AcmeAccountPublic], str | None]:
    app = await application_for(session, actor, ref, READ_ROLES)
    query = (
        select(AcmeAccount, Profile)
        .join(Profile, col(Profile.id) == col(AcmeAccount.profile_id))
        .where(AcmeAccount.application_id == app.id)
    )
    profile_id = await _profile_id(session, f.profile)
    if profile_id is not None:
        query = query.where(AcmeAccount.profile_id == profile_id)
    if f.status is not None:
        query = query.where(AcmeAccount.status == f.status.value)
    query = query.where(
        *after_cursor(col(AcmeAccount.created_at), col(AcmeAccount.id), f.cursor)
    ).order_by(col(AcmeAccount.created_at).desc(), col(AcmeAccount.id).desc())
    rows = list(await session.exec(query.limit(f.limit + 1)))
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    cursor = encode_cursor(rows[-1][0].created_at, rows[-1][0].id) if more and rows else None
    return [account_public(a, p) for a, p in rows], cursor


async def _account(
    session: AsyncSession, app: Application, account_id: UUID, *, lock: bool = False
) -> tuple[AcmeAccount, Profile]:
    query = (
        select(AcmeAccount, Profile)
        .join(Profile, col(Profile.id) == col(AcmeAccount.profile_id))
        .where(AcmeAccount.id == account_id, AcmeAccount.application_id == app.id)
    )
    row = (await session.exec(query.with_for_update(of=AcmeAccount) if lock else query)).first()
    if row is None:
        raise NotFound.on_field("account_id", f"no ACME account {account_id} in {app.slug!r}")
    return row


async def _account_detail(
    session: AsyncSession, account: AcmeAccount, profile: Profile
) -> AcmeAccountDetail:
    status = _order_status()
    rows = await session.exec(
        select(status, sa.func.count())
        .select_from(AcmeOrder)
        .outerjoin(CertificateRequest, col(CertificateRequest.id) == col(AcmeOrder.request_id))
        .where(AcmeOrder.account_id == account.id)
        .group_by(status)
    )
    counts = Counter({OrderStatus(status): n for status, n in rows})
    return AcmeAccountDetail(
        **account_public(account, profile).model_dump(),
        orders={status: counts[status] for status in OrderStatus},
    )


async def get_account(
    session: AsyncSession, actor: Actor, ref: str, account_id: UUID
) -> AcmeAccountDetail:
    app = await application_for(session, actor, ref, READ_ROLES)
    account, profile = await _account(session, app, account_id)
    return await _account_detail(session, account, profile)


async def deactivate_account(
    session: AsyncSession, audit: AuditScope, ref: str, account_id: UUID, now: datetime
) -> AcmeAccountDetail:
    """Deactivate (RFC 8555 §7.3.6, done by an admin): the ACME endpoints refuse every further
    request signed by its key. Final, and idempotent: a deactivated or revoked account stays
    as it is."""
    app = await application_for(session, audit.actor, ref, ADMIN_ROLES)
    account, profile = await _account(session, app, account_id, lock=True)
    previous = account.status
    if account.status == AccountStatus.VALID:
        account.status = AccountStatus.DEACTIVATED.value
        account.updated_at = now
        session.add(account)
    audit.record(
        session,
        resource_type="acme_account",
        resource_id=account.id,
        application_id=app.id,
        details={"profile": profile.slug, "status": account.status, "was": previous},
    )
    await commit(session)
    return await _account_detail(session, account, profile)


# --- orders -------------------------------------------------------------------------------


def _identifiers(raw: list[Any]) -> list[AcmeIdentifier]:
    return [AcmeIdentifier(type=str(i.get("type")), value=str(i.get("value"))) for i in raw]


_FINISHED = {
    RequestStatus.ISSUED: OrderStatus.VALID,
    RequestStatus.FAILED: OrderStatus.INVALID,
    RequestStatus.REJECTED: OrderStatus.INVALID,
}


def _order_status() -> sa.ColumnElement[str]:
    """The order's status as `order_public` reads it, in SQL: filters and counts agree with
    what the orders show (the query must outer-join the order's certificate request)."""
    processing = col(AcmeOrder.status) == OrderStatus.PROCESSING.value
    return sa.case(
        *(
            (processing & (col(CertificateRequest.status) == request.value), order.value)
            for request, order in _FINISHED.items()
        ),
        else_=col(AcmeOrder.status),
    )


def order_public(
    order: AcmeOrder, profile: Profile, request: CertificateRequest | None
) -> AcmeOrderPublic:
    """The order as it stands. A `processing` order's outcome is its certificate request's: an
    issued request reads `valid` with its certificate, a failed or rejected one `invalid`, even
    before the ACME endpoints next read (and persist) it: the api's finalize path owns that
    write, this read only shows what it will say."""
    status = OrderStatus(order.status)
    certificate_id = order.certificate_id
    if status is OrderStatus.PROCESSING and request is not None:
        status = _FINISHED.get(RequestStatus(request.status), status)
        if status is OrderStatus.VALID:
            certificate_id = request.certificate_id
    return AcmeOrderPublic(
        id=order.id,
        account_id=order.account_id,
        profile=profile.slug,
        status=status,
        identifiers=_identifiers(order.identifiers),
        expires_at=order.expires_at,
        error=order.error,
        request_id=order.request_id,
        request_error=request.error if request is not None else None,
        certificate_id=certificate_id,
        replaces=order.replaces,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def _order_query() -> Any:
    return (
        select(AcmeOrder, Profile, CertificateRequest)
        .join(Profile, col(Profile.id) == col(AcmeOrder.profile_id))
        .outerjoin(CertificateRequest, col(CertificateRequest.id) == col(AcmeOrder.request_id))
    )


async def list_orders(
    session: AsyncSession, actor: Actor, ref: str, f: OrderFilter
) -> tuple[list[AcmeOrderPublic], str | None]:
    app = await application_for(session, actor, ref, READ_ROLES)
    query = _order_query().where(AcmeOrder.application_id == app.id)
    if f.account is not None:
        query = query.where(AcmeOrder.account_id == f.account)
    profile_id = await _profile_id(session, f.profile)
    if profile_id is not None:
        query = query.where(AcmeOrder.profile_id == profile_id)
    if f.status is not None:
        query = query.where(_order_status() == f.status.value)
    query = query.where(
        *after_cursor(col(AcmeOrder.created_at), col(AcmeOrder.id), f.cursor)
    ).order_by(col(AcmeOrder.created_at).desc(), col(AcmeOrder.id).desc())
    rows = list(await session.exec(query.limit(f.limit + 1)))
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    cursor = encode_cursor(rows[-1][0].created_at, rows[-1][0].id) if more and rows else None
    return [order_public(o, p, r) for o, p, r in rows], cursor


async def get_order(
    session: AsyncSession, actor: Actor, ref: str, order_id: UUID
) -> AcmeOrderDetail:
    app = await application_for(session, actor, ref, READ_ROLES)
    row = (
        await session.exec(
            _order_query().where(AcmeOrder.id == order_id, AcmeOrder.application_id == app.id)
        )
    ).first()
    if row is None:
        raise NotFound.on_field("order_id", f"no ACME order {order_id} in {app.slug!r}")
    order, profile, request = row
    authorizations = list(
        await session.exec(
            select(AcmeAuthorization)
            .where(AcmeAuthorization.order_id == order.id)
            .order_by(col(AcmeAuthorization.created_at), col(AcmeAuthorization.id))
        )
    )
    challenges: dict[UUID, list[AcmeChallengePublic]] = {a.id: [] for a in authorizations}
    if authorizations:
        for challenge in await session.exec(
            select(AcmeChallenge)
            .where(col(AcmeChallenge.authorization_id).in_(list(challenges)))
            .order_by(col(AcmeChallenge.created_at), col(AcmeChallenge.id))
        ):
            challenges[challenge.authorization_id].append(
                AcmeChallengePublic(
                    id=challenge.id,
                    type=challenge.type,
                    status=challenge.status,
                    error=challenge.error,
                    attempts=challenge.attempts,
                    validated_at=challenge.validated_at,
                )
            )
    return AcmeOrderDetail(
        **order_public(order, profile, request).model_dump(),
        authorizations=[
            AcmeAuthorizationPublic(
                id=a.id,
                identifier=AcmeIdentifier(type=a.identifier_type, value=a.identifier_value),
                wildcard=a.wildcard,
                status=a.status,
                expires_at=a.expires_at,
                challenges=challenges[a.id],
            )
            for a in authorizations
        ],
    )
