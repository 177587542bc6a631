"""Checking a workload's JWT against an identity's `jwt` auth method: pure, clock passed in.

The checks, in order (each refusal names its reason for the audit log; the caller only ever
sees a generic 401):
1. the header's `alg` is one the method allows: asymmetric only (RS*, PS*, ES256/384,
   EdDSA/Ed25519); never `none`, never HMAC, so a public key can never be used as an HMAC secret;
2. the signature verifies with a key of the issuer's key set chosen by `kid` (joserfc does the
   JWS work; nothing here touches signature bytes);
3. `iss` equals the method's issuer, `aud` contains its audience, `exp` is in the future and
   `nbf`/`iat` are not, each with a small leeway for clock skew;
4. every bound claim matches one of its glob patterns (`fnmatchcase`: `*`, `?`, `[...]`; a
   pattern without metacharacters is an exact match).

Replay of a `jti` is checked by the caller after these pass (it needs the database), so a
forged token can never burn a legitimate `jti`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode

ALLOWED_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
    "Ed25519",
)
"""Asymmetric signatures only (EdDSA is RFC 8037's name, Ed25519 RFC 9864's): `none` and HS*
are never accepted, whatever a method says."""

MIN_RSA_BITS = 2048
MAX_JWT_BYTES = 16 * 1024


class LoginRefused(Exception):
    """A login refused for `reason` (audit log only; the caller gets a generic 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JwtRules:
    """What a `jwt` auth method requires of a token (its stored configuration, parsed)."""

    issuer: str
    audience: str
    bound_claims: Mapping[str, Sequence[str]]
    algorithms: Sequence[str]
    leeway: timedelta


@dataclass(frozen=True)
class VerifiedJwt:
    claims: dict[str, Any]
    expires_at: datetime
    jti: str | None


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of `token` *without* checking anything: only to pick the auth
    method (by `iss`) and the key (by `kid`) before the real verification."""
    if len(token) > MAX_JWT_BYTES:
        raise LoginRefused("jwt too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise LoginRefused("not a compact JWS")
    try:
        header = json.loads(urlsafe_b64decode(parts[0].encode()))
        claims = json.loads(urlsafe_b64decode(parts[1].encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoginRefused(f"malformed jwt: {type(exc).__name__}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise LoginRefused("malformed jwt: header or claims not an object")
    return header, claims


@dataclass(frozen=True)
class IssuerKey:
    """A public key and the `kid` its issuer gave it (None for a bare PEM key: joserfc's
    KeySet would invent a thumbprint id, which no token names)."""

    kid: str | None
    key: RSAKey | ECKey | OKPKey


IssuerKeys = tuple[IssuerKey, ...]


def usable_keys(jwks: Mapping[str, Any]) -> IssuerKeys:
    """The signature keys of a JWKS document: public asymmetric keys only, RSA of at least
    2048 bits. Anything else (symmetric, private, weak, malformed) is dropped, so one odd key
    at an issuer does not stop every login."""
    keys: list[IssuerKey] = []
    for raw in jwks.get("keys", []) if isinstance(jwks.get("keys"), list) else []:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        try:
            key = _public_key(raw)
        except ValueError:
            continue
        kid = raw.get("kid")
        keys.append(IssuerKey(kid if isinstance(kid, str) else None, key))
    return tuple(keys)


def _public_key(raw: Mapping[str, Any]) -> RSAKey | ECKey | OKPKey:
    kty = raw.get("kty")
    if "d" in raw:
        raise ValueError("a private key; give the public key only")
    try:
        if kty == "RSA":
            with warnings.catch_warnings():  # joserfc warns on small keys; refused below
                warnings.simplefilter("ignore", SecurityWarning)
                rsa = RSAKey.import_key(dict(raw))
            if rsa.raw_value.key_size < MIN_RSA_BITS:
                raise ValueError(f"RSA key of {rsa.raw_value.key_size} bits (minimum 2048)")
            return rsa
        if kty == "EC":
            return ECKey.import_key(dict(raw))
        if kty == "OKP":
            return OKPKey.import_key(dict(raw))
    except JoseError as exc:
        raise ValueError(f"not a valid {kty} key: {exc.description or exc.error}") from None
    raise ValueError(f"key type {kty!r} is not allowed (RSA, EC or OKP public keys)")


def check_jwks(jwks: Mapping[str, Any]) -> None:
    """For a JWKS given in an auth method: every key must be usable (an admin's mistake is a
    422, not a silently dropped key)."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError("must be a JWKS: an object with a non-empty `keys` list")
    for i, raw in enumerate(keys):
        if not isinstance(raw, dict):
            raise ValueError(f"keys[{i}] is not an object")
        try:
            _public_key(raw)
        except ValueError as exc:
            raise ValueError(f"keys[{i}]: {exc}") from None


def pem_to_jwk(pem: str) -> dict[str, Any]:
    """A PEM public key as a JWK (checked like a JWKS key)."""
    if "PRIVATE KEY" in pem:
        raise ValueError("a private key; give the public key only")
    for cls in (RSAKey, ECKey, OKPKey):
        try:
            key = cls.import_key(pem.encode())
        except (JoseError, ValueError, TypeError):
            continue
        data = dict(key.as_dict(private=False))
        _public_key(data)
        return data
    raise ValueError("not a PEM public key (RSA, EC P-256/P-384 or Ed25519)")


def verify(token: str, keys: IssuerKeys, rules: JwtRules, now: datetime) -> VerifiedJwt:
    """Steps 1-4 of the module docstring; `LoginRefused` on the first failure."""
    header, _ = peek(token)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS or alg not in rules.algorithms:
        raise LoginRefused(f"algorithm {str(alg)[:20]!r} not allowed")
    candidates = _candidates(keys, header.get("kid"))
    failure = "no key"
    for key in candidates:
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except JoseError as exc:
            failure = exc.error
            continue
        break
    else:
        raise LoginRefused(f"signature: {failure}")
    claims = decoded.claims
    _check_claims(claims, rules, now)
    exp = datetime.fromtimestamp(claims["exp"], UTC)
    jti = claims.get("jti")
    return VerifiedJwt(claims=claims, expires_at=exp, jti=str(jti) if jti is not None else None)


def _candidates(keys: IssuerKeys, kid: object) -> list[RSAKey | ECKey | OKPKey]:
    """The keys that may have signed a token naming `kid`: the key with that id; keys without
    an id (static PEM keys) when none has it; every key when the token names none."""
    if kid is None:
        return [k.key for k in keys]
    named = [k.key for k in keys if k.kid == kid]
    unnamed = [k.key for k in keys if k.kid is None]
    if not named and not unnamed:
        raise LoginRefused(f"unknown kid {str(kid)[:64]!r}")
    return named or unnamed


def _check_claims(claims: dict[str, Any], rules: JwtRules, now: datetime) -> None:
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=int(rules.leeway.total_seconds()),
        iss={"essential": True, "value": rules.issuer},
        aud={"essential": True, "value": rules.audience},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise LoginRefused(f"claims: {exc.description or exc.error}") from None
    for name, patterns in rules.bound_claims.items():
        if not claim_matches(claims.get(name), patterns):
            raise LoginRefused(f"bound claim {name!r} does not match")


def claim_matches(value: object, patterns: Sequence[str]) -> bool:
    """A claim matches when it (or, for a list claim, one of its items) matches one pattern.
    Only strings, numbers and booleans are compared (as their JSON text); objects never match."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, str | int | float):
            text = str(item)
        else:
            continue
        if any(fnmatchcase(text, p) for p in patterns):
            return True
    return False


def access_token_expiry(
    now: datetime, ttl: timedelta, jwt_expires_at: datetime, may_outlive_jwt: bool
) -> datetime:
    """The minted token's expiry: `ttl` from now, capped by the JWT's own expiry unless the
    method allows otherwise (a stolen short-lived JWT then buys no more than it had)."""
    expiry = now + ttl
    return expiry if may_outlive_jwt else min(expiry, jwt_expires_at)
