"""External Account Binding (RFC 8555 §7.3.4): the inner JWS a client sends with newAccount
when the directory requires it, MACed with an EAB key an admin created for this enrollment.

The key is checked (it exists for this application and profile, is not revoked, is bound to
no account), its MAC verified with the key opened from the leaf key ring, and it is bound to
the new account, with an audit entry, in the transaction that creates the account. A wrong
MAC or an unusable key is `unauthorized`: the key is the credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import orjson
from joserfc.jwk import OctKey

from certforge.api.acme import audit, jws
from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import AcmeProblem, malformed, unauthorized
from certforge.api.context import ApiContext
from certforge.common.acme import ErrorType, eab_key_aad
from certforge.common.crypto.envelope import EnvelopeError

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

EAB_ALGORITHMS = ("HS256", "HS384", "HS512")

_EAB_KEY_SQL = """
SELECT * FROM acme_eab_keys WHERE id = $1 AND application_id = $2 AND profile_id = $3
FOR UPDATE
"""

_BIND_SQL = """
UPDATE acme_eab_keys SET account_id = $2, bound_at = $3
WHERE id = $1 AND account_id IS NULL AND revoked_at IS NULL
"""


@dataclass(frozen=True)
class Binding:
    """The parts of an `externalAccountBinding` JWS (RFC 8555 §7.3.4) before its MAC is
    checked (that needs the key, found by `kid`)."""

    token: jws.Jws
    kid: str


def parse_binding(value: object, new_account_url: str, account_key: jws.PublicKey) -> Binding:
    """The EAB JWS's structure: HMAC `alg`, `kid`, `url` = newAccount, no nonce, and the
    account's own JWK as its payload. Malformed otherwise."""
    if not isinstance(value, dict):
        raise malformed("'externalAccountBinding' must be a flattened JWS object")
    token = jws.parse(orjson.dumps(value))
    header = token.protected
    if header.get("alg") not in EAB_ALGORITHMS:
        raise malformed(
            f"the externalAccountBinding must be MACed with one of {', '.join(EAB_ALGORITHMS)}"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 64 or not kid.isprintable():
        raise malformed("the externalAccountBinding has no valid 'kid' (the EAB key id)")
    if "nonce" in header or "jwk" in header:
        raise malformed("the externalAccountBinding must have no 'nonce' and no 'jwk'")
    if header.get("url") != new_account_url:
        raise malformed("the externalAccountBinding 'url' must be the newAccount URL")
    try:
        inner_key = jws.public_key(orjson.loads(token.payload))
    except orjson.JSONDecodeError:
        raise malformed("the externalAccountBinding payload must be the account JWK") from None
    if not jws.same_jwk(inner_key, account_key):
        raise malformed("the externalAccountBinding payload is not the account's key")
    return Binding(token=token, kid=kid)


def check_binding_mac(binding: Binding, hmac_key: bytes) -> None:
    """The MAC under the EAB key; a wrong MAC is `unauthorized` (the key is the credential)."""
    try:
        jws.verify(binding.token, OctKey.import_key(hmac_key), binding.token.alg)
    except AcmeProblem:
        raise unauthorized("the externalAccountBinding MAC does not verify") from None


async def bind(
    context: ApiContext,
    conn: Connection,
    target: AcmeTarget,
    binding: Binding,
    account_id: UUID,
    now: datetime,
    request_id: str | None,
) -> None:
    """Check the EAB key and its MAC, bind it to the new account and audit the binding."""
    key = await conn.fetchrow(_EAB_KEY_SQL, binding.kid, target.app_id, target.profile_id)
    if key is None:
        raise unauthorized("the externalAccountBinding names no EAB key of this directory")
    if key["revoked_at"] is not None:
        raise unauthorized("the EAB key has been revoked")
    if key["account_id"] is not None:
        raise unauthorized("the EAB key is already bound to another account")
    try:
        hmac_key = context.leaf_keys.decrypt(key["encrypted_hmac_key"], eab_key_aad(key["id"]))
    except EnvelopeError:
        raise AcmeProblem(
            ErrorType.SERVER_INTERNAL, "the EAB key cannot be read on this server", 500
        ) from None
    check_binding_mac(binding, hmac_key)
    await conn.execute(_BIND_SQL, binding.kid, account_id, now)
    await audit.record(
        conn,
        audit.entry(
            action="acme.eab.bind",
            account_id=account_id,
            application_id=target.app_id,
            resource_type="acme_eab_key",
            resource_id=binding.kid,
            details={"account_id": str(account_id), "profile": target.profile_slug},
            now=now,
            status_code=201,
            request_id=request_id,
        ),
    )
