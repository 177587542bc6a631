"""ACME endpoints (RFC 8555, RFC 9773 renewalInfo), one directory per attached profile.

Thin: each handler resolves the directory, runs the checks every signed request gets
(`acme.signed`), calls one domain function and shapes the answer. Not in the OpenAPI document:
ACME is specified by its RFCs, and its clients read the directory, not OpenAPI.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from certforge.api.acme import (
    accounts,
    ari,
    authorizations,
    certificates,
    directory,
    finalize,
    orders,
    revocation,
)
from certforge.api.acme.errors import malformed, not_found, unauthorized
from certforge.api.acme.responses import context_of, respond, urls_of
from certforge.api.acme.signed import Signed, verified
from certforge.api.acme.urls import AcmeUrls
from certforge.common.acme import Status
from certforge.common.db.pool import Row

router = APIRouter(prefix="/acme/{application}/{profile}", include_in_schema=False)


async def _directory(request: Request) -> tuple[directory.AcmeTarget, AcmeUrls]:
    params = request.path_params
    target = await directory.target(
        context_of(request).db, params["application"], params["profile"]
    )
    urls = urls_of(request)
    assert urls is not None
    return target, urls


async def _signed(
    request: Request, key_by: Literal["jwk", "kid", "either"] = "kid"
) -> tuple[directory.AcmeTarget, AcmeUrls, Signed, datetime]:
    target, urls = await _directory(request)
    now = datetime.now(UTC)
    return target, urls, await verified(request, target, urls, now, key_by=key_by), now


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise not_found(f"no {what} {value[:64]!r}") from None


def _read_only(signed: Signed, what: str) -> None:
    """Resources that are only read take POST-as-GET: an empty payload, not `{}` (RFC 8555
    §6.3)."""
    if not signed.post_as_get:
        raise malformed(f"{what} is read with POST-as-GET (an empty payload)")


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


@router.get("/directory", name="acme.directory")
async def get_directory(request: Request) -> Response:
    target, urls = await _directory(request)
    return await respond(request, directory.document(urls, target))


@router.head("/new-nonce", name="acme.nonce.head")
async def head_nonce(request: Request) -> Response:
    await _directory(request)
    return await respond(request, None, 200)


@router.get("/new-nonce", name="acme.nonce.get")
async def get_nonce(request: Request) -> Response:
    await _directory(request)
    return await respond(request, None, 204)


@router.post("/new-account", name="acme.account.new")
async def new_account(request: Request) -> Response:
    target, urls, signed, now = await _signed(request, "jwk")
    account, created = await accounts.new_account(
        context_of(request), target, urls, signed, now, _request_id(request)
    )
    return await respond(
        request,
        accounts.account_json(urls, account),
        201 if created else 200,
        headers={"Location": urls.account(account["id"])},
    )


@router.post("/acct/{account_id}", name="acme.account")
async def account(request: Request, account_id: str) -> Response:
    _, urls, signed, now = await _signed(request)
    row = await accounts.update(context_of(request), signed, _uuid(account_id, "account"), now)
    return await respond(request, accounts.account_json(urls, row))


@router.post("/acct/{account_id}/orders", name="acme.account.orders")
async def account_orders(request: Request, account_id: str) -> Response:
    _, urls, signed, _ = await _signed(request)
    _read_only(signed, "the orders list")
    owner = signed.account_row()
    if owner["id"] != _uuid(account_id, "account"):
        raise unauthorized("the JWS 'kid' is not this account")
    ids, cursor = await orders.page(
        context_of(request), owner["id"], request.query_params.get("cursor")
    )
    links = [f'<{urls.orders(owner["id"])}?cursor={cursor}>;rel="next"'] if cursor else []
    return await respond(request, {"orders": [urls.order(i) for i in ids]}, links=links)


@router.post("/key-change", name="acme.account.key_change")
async def key_change(request: Request) -> Response:
    target, urls, signed, now = await _signed(request)
    row = await accounts.key_change(context_of(request), target, urls, signed, now)
    return await respond(request, accounts.account_json(urls, row))


@router.post("/new-order", name="acme.order.new")
async def new_order(request: Request) -> Response:
    target, urls, signed, now = await _signed(request)
    context = context_of(request)
    row = await orders.create(context, target, signed.account_row(), signed.payload(), now)
    return await respond(
        request,
        await orders.order_json(context, urls, row),
        201,
        headers={"Location": urls.order(row["id"])},
    )


@router.post("/order/{order_id}", name="acme.order")
async def order(request: Request, order_id: str) -> Response:
    target, urls, signed, now = await _signed(request)
    _read_only(signed, "an order")
    context = context_of(request)
    row = await orders.owned(context, target, signed.account_row(), _uuid(order_id, "order"))
    row = await orders.current(context, row, now)
    return await _order_response(request, urls, row)


@router.post("/order/{order_id}/finalize", name="acme.order.finalize")
async def finalize_order(request: Request, order_id: str) -> Response:
    target, urls, signed, now = await _signed(request)
    context = context_of(request)
    row = await orders.owned(context, target, signed.account_row(), _uuid(order_id, "order"))
    row = await finalize.finalize(context, target, signed, row, now, _request_id(request))
    return await _order_response(request, urls, row)


async def _order_response(request: Request, urls: AcmeUrls, row: Row) -> Response:
    context = context_of(request)
    headers = {"Location": urls.order(row["id"])}
    if row["status"] == Status.PROCESSING:
        headers["Retry-After"] = str(context.settings.acme_retry_after_seconds)
    return await respond(request, await orders.order_json(context, urls, row), headers=headers)


@router.post("/authz/{authz_id}", name="acme.authorization")
async def authorization(request: Request, authz_id: str) -> Response:
    target, urls, signed, now = await _signed(request)
    body = await authorizations.authorization(
        context_of(request), target, urls, signed, _uuid(authz_id, "authorization"), now
    )
    return await respond(request, body)


@router.post("/chall/{challenge_id}", name="acme.challenge")
async def challenge(request: Request, challenge_id: str) -> Response:
    target, urls, signed, now = await _signed(request)
    context = context_of(request)
    body, authz_id = await authorizations.challenge(
        context, target, urls, signed, _uuid(challenge_id, "challenge"), now
    )
    headers = {}
    if body["status"] == Status.PROCESSING:
        headers["Retry-After"] = str(context.settings.acme_retry_after_seconds)
    links = [f'<{urls.authorization(authz_id)}>;rel="up"']
    return await respond(request, body, headers=headers, links=links)


@router.post("/cert/{certificate_id}", name="acme.certificate")
async def certificate(request: Request, certificate_id: str) -> Response:
    return await _certificate(request, certificate_id, 0)


@router.post("/cert/{certificate_id}/{chain}", name="acme.certificate.chain")
async def certificate_chain(request: Request, certificate_id: str, chain: str) -> Response:
    if not chain.isdigit() or len(chain) > 2:
        raise not_found(f"no chain {chain[:8]!r}")
    return await _certificate(request, certificate_id, int(chain))


async def _certificate(request: Request, certificate_id: str, chain: int) -> Response:
    target, urls, signed, _ = await _signed(request)
    cert_id = _uuid(certificate_id, "certificate")
    _read_only(signed, "a certificate")
    pem = await certificates.download(context_of(request), target, signed, cert_id, chain)
    links = [
        f'<{urls.certificate(cert_id, other)}>;rel="alternate"'
        for other in range(certificates.CHAINS)
        if other != chain
    ]
    return await respond(
        request, pem.encode("ascii"), media_type=certificates.PEM_CHAIN, links=links
    )


@router.post("/revoke-cert", name="acme.certificate.revoke")
async def revoke_cert(request: Request) -> Response:
    target, _, signed, now = await _signed(request, "either")
    await revocation.revoke(context_of(request), target, signed, now, _request_id(request))
    return await respond(request, None, 200)


@router.get("/renewal-info/{cert_id}", name="acme.renewal_info")
async def renewal_info(request: Request, cert_id: str) -> Response:
    target, _ = await _directory(request)
    body = await ari.renewal_info(context_of(request), target, cert_id)
    return await respond(request, body, headers={"Retry-After": str(ari.RETRY_AFTER_SECONDS)})
