"""The checks every ACME POST goes through before its resource sees it (RFC 8555 §6.2-6.5).

In order, as Boulder's `wfe2/verify.go`: the media type, the body size, the JWS structure and
header, the `url` header against the URL the request reached, the key (the `jwk`, or the
account the `kid` names), the signature, and last the nonce — so a request that fails earlier
does not burn the client's nonce, and a nonce is only spent by a request its key signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import Request

from certforge.api.acme import jws, nonces
from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import AcmeProblem, malformed, unauthorized
from certforge.api.acme.responses import context_of
from certforge.api.acme.urls import AcmeUrls, request_url
from certforge.common.acme import ErrorType, Status
from certforge.common.db.pool import Database, Row

JOSE_JSON = "application/jose+json"

_ACCOUNT_SQL = """
SELECT * FROM acme_accounts WHERE id = $1 AND application_id = $2 AND profile_id = $3
"""


@dataclass(frozen=True)
class Signed:
    """A verified request: its JWS, the key that signed it, and the account when `kid`."""

    token: jws.Jws
    key: jws.PublicKey
    account: Row | None

    @property
    def post_as_get(self) -> bool:
        return self.token.post_as_get

    def payload(self) -> dict[str, Any]:
        if self.token.post_as_get:
            raise malformed("this request needs a JSON payload, not POST-as-GET")
        return self.token.json_payload()

    def account_row(self) -> Row:
        assert self.account is not None
        return self.account


async def verified(
    request: Request,
    target: AcmeTarget,
    urls: AcmeUrls,
    now: datetime,
    *,
    key_by: Literal["jwk", "kid", "either"] = "kid",
) -> Signed:
    context = context_of(request)
    settings = context.settings
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JOSE_JSON:
        raise malformed(f"the Content-Type must be {JOSE_JSON}", 415)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.acme_max_body_bytes:
        raise _too_large(settings.acme_max_body_bytes)
    body = await request.body()
    if len(body) > settings.acme_max_body_bytes:
        raise _too_large(settings.acme_max_body_bytes)
    token = jws.parse(body)
    jws.check_protected(token, key_by=key_by)
    if token.protected["url"] != request_url(request, settings.acme_base_url):
        raise unauthorized("the JWS 'url' header is not the URL this request was sent to")
    account: Row | None = None
    if "jwk" in token.protected:
        key = jws.public_key(token.protected["jwk"])
    else:
        account = await account_by_kid(context.db, target, urls, token.protected["kid"])
        key = jws.public_key(account["jwk"])
    jws.verify(token, key)
    if not await nonces.consume(context.db, token.protected.get("nonce"), now):
        raise AcmeProblem(ErrorType.BAD_NONCE, "the JWS nonce is unknown, used or expired")
    if account is not None and account["status"] != Status.VALID:
        raise unauthorized(f"the account is {account['status']}")
    return Signed(token=token, key=key, account=account)


async def account_by_kid(db: Database, target: AcmeTarget, urls: AcmeUrls, kid: str) -> Row:
    account_id = urls.account_id(kid)
    row = None
    if account_id is not None:
        row = await db.fetchrow(_ACCOUNT_SQL, account_id, target.app_id, target.profile_id)
    if row is None:
        raise AcmeProblem(
            ErrorType.ACCOUNT_DOES_NOT_EXIST, "the JWS 'kid' names no account of this directory"
        )
    return row


def _too_large(limit: int) -> AcmeProblem:
    return malformed(f"the request body is larger than {limit} bytes", 413)
