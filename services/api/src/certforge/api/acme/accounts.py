"""ACME accounts (RFC 8555 §7.3): creation with External Account Binding, lookup by key,
contact update, deactivation and key rollover.

An account is a public key registered at one directory; its id is its URL's last segment.
The pure checks (contacts, the EAB JWS) are functions of their inputs; the database steps are
single statements or one transaction each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
from pydantic import ValidationError

from certforge.api.acme import eab, jws
from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import AcmeProblem, malformed, unauthorized
from certforge.api.acme.signed import Signed
from certforge.api.acme.urls import AcmeUrls
from certforge.api.context import ApiContext
from certforge.common.acme import ErrorType, Status, problem
from certforge.common.db.pool import Row
from certforge.common.domain import SanType
from certforge.common.template import San

MAX_CONTACTS = 8

_BY_THUMBPRINT_SQL = """
SELECT * FROM acme_accounts
WHERE application_id = $1 AND profile_id = $2 AND jwk_thumbprint = $3
"""
_INSERT_SQL = """
INSERT INTO acme_accounts (id, application_id, profile_id, status, jwk, jwk_thumbprint,
                           contact, eab_key_id, terms_agreed, created_at, updated_at)
VALUES ($1, $2, $3, 'valid', $4, $5, $6, $7, $8, $9, $9)
RETURNING *
"""
_UPDATE_CONTACT_SQL = """
UPDATE acme_accounts SET contact = $2, updated_at = $3 WHERE id = $1 RETURNING *
"""
_LOCK_ORDERS_SQL = """
SELECT id FROM acme_orders WHERE account_id = $1 AND status IN ('pending', 'ready')
ORDER BY id FOR UPDATE
"""
_DEACTIVATE_SQL = """
UPDATE acme_accounts SET status = 'deactivated', updated_at = $2
WHERE id = $1 AND status = 'valid' RETURNING *
"""
_CANCEL_AUTHORIZATIONS_SQL = """
UPDATE acme_authorizations SET status = 'deactivated', updated_at = $2
WHERE account_id = $1 AND status = 'pending'
"""
_CANCEL_ORDERS_SQL = """
UPDATE acme_orders SET status = 'invalid', updated_at = $2, error = $3
WHERE account_id = $1 AND status IN ('pending', 'ready')
"""
_CHANGE_KEY_SQL = """
UPDATE acme_accounts SET jwk = $2, jwk_thumbprint = $3, updated_at = $4
WHERE id = $1 AND jwk_thumbprint = $5 RETURNING *
"""


def account_json(urls: AcmeUrls, row: Row) -> dict[str, Any]:
    """The account object (RFC 8555 §7.1.2). The EAB key it was bound with is not echoed
    (as Boulder): the field would be the client's own JWS, and admins see the key id."""
    body: dict[str, Any] = {
        "status": row["status"],
        "contact": list(row["contact"]),
        "termsOfServiceAgreed": bool(row["terms_agreed"]),
        "orders": urls.orders(row["id"]),
        "createdAt": row["created_at"].isoformat().replace("+00:00", "Z"),
    }
    return body


def check_contacts(value: object) -> list[str]:
    """`mailto:` URLs with one valid address each (RFC 8555 §7.3: unsupportedContact for other
    schemes, invalidContact for a bad address)."""
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise malformed("'contact' must be a list of URL strings")
    if len(value) > MAX_CONTACTS:
        raise AcmeProblem(
            ErrorType.INVALID_CONTACT, f"at most {MAX_CONTACTS} contacts are accepted"
        )
    contacts = []
    for contact in value:
        scheme, colon, address = contact.partition(":")
        if not colon or scheme.lower() != "mailto":
            raise AcmeProblem(
                ErrorType.UNSUPPORTED_CONTACT,
                f"contact {contact[:100]!r}: only mailto: contacts are supported",
            )
        if not address or any(c in address for c in "?,;%") or len(address) > 254:
            raise AcmeProblem(
                ErrorType.INVALID_CONTACT,
                f"contact {contact[:100]!r}: a mailto: contact is one plain address",
            )
        try:
            san = San(type=SanType.EMAIL, value=address)
        except ValidationError:
            raise AcmeProblem(
                ErrorType.INVALID_CONTACT, f"contact {contact[:100]!r}: not an email address"
            ) from None
        contacts.append(f"mailto:{san.value}")
    return contacts


async def find(context: ApiContext, target: AcmeTarget, key: jws.PublicKey) -> Row | None:
    return await context.db.fetchrow(
        _BY_THUMBPRINT_SQL, target.app_id, target.profile_id, jws.thumbprint(key)
    )


async def new_account(
    context: ApiContext,
    target: AcmeTarget,
    urls: AcmeUrls,
    signed: Signed,
    now: datetime,
    request_id: str | None,
) -> tuple[Row, bool]:
    """`(account, created)`: the existing account of this key, or a new one."""
    payload = signed.payload()
    existing = await find(context, target, signed.key)
    if existing is not None:
        if existing["status"] != Status.VALID:
            raise unauthorized(f"the account of this key is {existing['status']}")
        return existing, False
    if payload.get("onlyReturnExisting") is True:
        raise AcmeProblem(ErrorType.ACCOUNT_DOES_NOT_EXIST, "no account has this key")
    contacts = check_contacts(payload.get("contact", []))
    agreed = payload.get("termsOfServiceAgreed", False)
    if not isinstance(agreed, bool):
        raise malformed("'termsOfServiceAgreed' must be a boolean")
    if target.terms_of_service and not agreed:
        raise malformed("the terms of service must be agreed to (termsOfServiceAgreed)")
    binding = None
    if "externalAccountBinding" in payload:
        binding = eab.parse_binding(payload["externalAccountBinding"], urls.new_account, signed.key)
    elif target.eab_required:
        raise AcmeProblem(
            ErrorType.EXTERNAL_ACCOUNT_REQUIRED,
            "this directory requires an externalAccountBinding",
            403,
        )
    account_id = uuid4()
    public_jwk = {k: v for k, v in signed.key.as_dict(private=False).items() if k != "kid"}
    try:
        async with context.db.acquire() as conn, conn.transaction():
            if binding is not None:
                await eab.bind(context, conn, target, binding, account_id, now, request_id)
            row = await conn.fetchrow(
                _INSERT_SQL,
                account_id,
                target.app_id,
                target.profile_id,
                public_jwk,
                jws.thumbprint(signed.key),
                contacts,
                binding.kid if binding else None,
                agreed,
                now,
            )
    except asyncpg.UniqueViolationError:
        # The same key registered concurrently: answer with that account.
        existing = await find(context, target, signed.key)
        if existing is None:
            raise
        return existing, False
    assert row is not None
    return row, True


async def update(context: ApiContext, signed: Signed, account_id: UUID, now: datetime) -> Row:
    """POST to the account URL: read (POST-as-GET or `{}`), change contacts, or deactivate."""
    account = signed.account_row()
    if account["id"] != account_id:
        raise unauthorized("the JWS 'kid' is not this account")
    if signed.post_as_get:
        return account
    payload = signed.payload()
    if "status" in payload:
        if payload["status"] != Status.DEACTIVATED:
            raise malformed("an account's status can only be changed to 'deactivated'")
        return await _deactivate(context, account, now)
    if "contact" in payload:
        contacts = check_contacts(payload["contact"])
        row = await context.db.fetchrow(_UPDATE_CONTACT_SQL, account_id, contacts, now)
        assert row is not None
        return row
    return account


async def _deactivate(context: ApiContext, account: Row, now: datetime) -> Row:
    """Deactivation cancels what the account had in progress (RFC 8555 §7.3.6): its pending
    authorizations are deactivated and its unfinished orders invalid; processing ones complete.
    Its orders are locked first, in id order, as the validator locks an order before it records
    a verdict."""
    cancelled = problem(ErrorType.UNAUTHORIZED, "the account was deactivated", status=403)
    async with context.db.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK_ORDERS_SQL, account["id"])
        row = await conn.fetchrow(_DEACTIVATE_SQL, account["id"], now)
        if row is None:
            return account
        await conn.execute(_CANCEL_AUTHORIZATIONS_SQL, account["id"], now)
        await conn.execute(_CANCEL_ORDERS_SQL, account["id"], now, cancelled)
    return row


async def key_change(
    context: ApiContext,
    target: AcmeTarget,
    urls: AcmeUrls,
    signed: Signed,
    now: datetime,
) -> Row:
    """RFC 8555 §7.3.5: the outer JWS signed by the old key (kid), the inner by the new key
    (jwk) over `{account, oldKey}`; 409 with the other account's URL if the new key is taken."""
    account = signed.account_row()
    inner = jws.parse(orjson.dumps(signed.payload()))
    jws.check_protected(inner, key_by="jwk")
    if inner.protected["url"] != signed.token.protected["url"]:
        raise malformed("the inner JWS 'url' must be the outer JWS 'url'")
    new_key = jws.public_key(inner.protected["jwk"])
    jws.verify(inner, new_key)
    body = inner.json_payload()
    if body.get("account") != urls.account(account["id"]):
        raise malformed("the inner payload's 'account' is not the account signing the request")
    try:
        old_key = jws.public_key(body.get("oldKey"))
    except AcmeProblem:
        raise malformed("the inner payload's 'oldKey' is not a valid JWK") from None
    if not jws.same_jwk(old_key, signed.key):
        raise malformed("the inner payload's 'oldKey' is not the account's current key")
    other = await find(context, target, new_key)
    if other is not None:
        raise AcmeProblem(
            ErrorType.MALFORMED,
            "the new key already belongs to an account",
            409,
            headers={"Location": urls.account(other["id"])},
        )
    public_jwk = {k: v for k, v in new_key.as_dict(private=False).items() if k != "kid"}
    try:
        row = await context.db.fetchrow(
            _CHANGE_KEY_SQL,
            account["id"],
            public_jwk,
            jws.thumbprint(new_key),
            now,
            jws.thumbprint(signed.key),
        )
    except asyncpg.UniqueViolationError:
        raise AcmeProblem(
            ErrorType.MALFORMED, "the new key already belongs to an account", 409
        ) from None
    if row is None:
        raise AcmeProblem(ErrorType.BAD_NONCE, "the account key changed meanwhile; retry")
    return row
