"""JWS as ACME uses it (RFC 8555 §6.2), checked without touching the database.

`parse` takes the raw body apart (flattened JSON serialization only, a protected header, no
unprotected header, no detached payload) and `check_protected` applies ACME's header rules;
`public_key` imports a `jwk` and refuses keys too weak to trust; `verify` checks the signature
with joserfc, the JOSE library we rely on for every signature (never hand-rolled). Each refusal
is the `AcmeProblem` Boulder's `wfe2/verify.go` answers for it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, cast

import orjson
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey, import_key
from joserfc.jws import FlattenedJSONSerialization, JWSRegistry
from joserfc.registry import HeaderParameter

from certforge.api.acme.errors import AcmeProblem, malformed
from certforge.common.acme import ErrorType, b64url_decode

ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "RS256", "EdDSA")
"""What account keys may sign with: ECDSA P-256/P-384, RSA ≥ 2048 bits, Ed25519."""
MIN_RSA_BITS = 2048
_CURVE_OF = {"ES256": "P-256", "ES384": "P-384"}

PublicKey = ECKey | RSAKey | OKPKey


class _Registry(JWSRegistry):
    """joserfc's registry with room for an RSA-4096 `jwk` in the protected header (its default
    allows 512 bytes); the body-size limit is enforced before parsing."""

    max_header_length = 8192
    max_payload_length = 1024 * 1024
    max_signature_length = 2048


_ACME_HEADERS = {
    "nonce": HeaderParameter("Anti-replay nonce (RFC 8555 §6.5)", "str"),
    "url": HeaderParameter("The request URL (RFC 8555 §6.4)", "str"),
}


@dataclass(frozen=True)
class Jws:
    """A flattened JWS, decoded but not yet verified."""

    raw: dict[str, Any]
    protected: dict[str, Any]
    payload: bytes

    @property
    def alg(self) -> str:
        return str(self.protected["alg"])

    @property
    def post_as_get(self) -> bool:
        """RFC 8555 §6.3: an empty payload (not `{}`) reads a resource."""
        return self.payload == b""

    def json_payload(self) -> dict[str, Any]:
        """The payload as a JSON object (malformed otherwise)."""
        try:
            value = orjson.loads(self.payload)
        except orjson.JSONDecodeError:
            raise malformed("the JWS payload is not JSON") from None
        if not isinstance(value, dict):
            raise malformed("the JWS payload must be a JSON object")
        return value


def parse(body: bytes) -> Jws:
    """The body as a flattened JWS with a decodable protected header, or malformed."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise malformed("the body is not JSON (a flattened JWS is expected)") from None
    if not isinstance(raw, dict):
        raise malformed("the body must be a JSON object (a flattened JWS)")
    if "signatures" in raw:
        raise malformed("JWS General Serialization is not supported; use the flattened form")
    if "header" in raw:
        raise malformed("the JWS must not have an unprotected header")
    for member in ("protected", "payload", "signature"):
        if not isinstance(raw.get(member), str):
            raise malformed(f"the JWS has no {member!r} string")
    if unknown := set(raw) - {"protected", "payload", "signature"}:
        raise malformed(f"the JWS has unknown members: {', '.join(sorted(unknown))}")
    try:
        protected = orjson.loads(b64url_decode(raw["protected"]))
        payload = b64url_decode(raw["payload"])
        b64url_decode(raw["signature"])
    except (ValueError, orjson.JSONDecodeError):
        raise malformed("the JWS members must be base64url (unpadded), the header JSON") from None
    if not isinstance(protected, dict):
        raise malformed("the JWS protected header must be a JSON object")
    return Jws(raw=raw, protected=protected, payload=payload)


def check_protected(token: Jws, *, key_by: str) -> None:
    """The header rules of RFC 8555 §6.2: a supported `alg`, a `url`, and exactly the key
    reference this resource takes (`key_by` is "jwk", "kid" or "either")."""
    alg = token.protected.get("alg")
    if alg not in ALGORITHMS:
        raise bad_algorithm(alg)
    if not isinstance(token.protected.get("url"), str):
        raise malformed("the JWS protected header has no 'url'")
    if "b64" in token.protected or "crit" in token.protected:
        raise malformed("the JWS protected header must not use 'b64' or 'crit'")
    has_jwk, has_kid = "jwk" in token.protected, "kid" in token.protected
    if has_jwk and has_kid:
        raise malformed("the JWS protected header must have either 'jwk' or 'kid', not both")
    if not has_jwk and not has_kid:
        raise malformed("the JWS protected header must have 'jwk' or 'kid'")
    if key_by == "jwk" and not has_jwk:
        raise malformed("this resource takes a JWS with a 'jwk' header, not 'kid'")
    if key_by == "kid" and not has_kid:
        raise malformed("this resource takes a JWS with a 'kid' header (the account URL)")
    if has_kid and not isinstance(token.protected["kid"], str):
        raise malformed("the JWS 'kid' must be the account URL")


def bad_algorithm(alg: object) -> AcmeProblem:
    return AcmeProblem(
        ErrorType.BAD_SIGNATURE_ALGORITHM,
        f"the JWS algorithm {alg!r} is not supported; use one of {', '.join(ALGORITHMS)}",
        extra={"algorithms": list(ALGORITHMS)},
    )


def public_key(jwk: object) -> PublicKey:
    """An account's public key from a JWK: EC P-256/P-384, RSA ≥ 2048 bits or Ed25519; private
    members refused (a client that sends its private key must not be told it worked)."""
    if not isinstance(jwk, dict) or not all(isinstance(k, str) for k in jwk):
        raise malformed("the 'jwk' must be a JSON object")
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise AcmeProblem(ErrorType.BAD_PUBLIC_KEY, "the 'jwk' must be a public key")
    try:
        with warnings.catch_warnings():
            # joserfc warns about RSA keys under 2048 bits; they are refused just below.
            warnings.simplefilter("ignore", SecurityWarning)
            key = import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError, AttributeError):
        raise AcmeProblem(ErrorType.BAD_PUBLIC_KEY, "the 'jwk' is not a valid public key") from None
    if isinstance(key, OctKey) or key.is_private:
        raise AcmeProblem(ErrorType.BAD_PUBLIC_KEY, "the 'jwk' must be an asymmetric public key")
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        raise AcmeProblem(
            ErrorType.BAD_PUBLIC_KEY, f"RSA account keys must have at least {MIN_RSA_BITS} bits"
        )
    if isinstance(key, ECKey) and key.curve_name not in ("P-256", "P-384"):
        raise AcmeProblem(ErrorType.BAD_PUBLIC_KEY, "EC account keys must be P-256 or P-384")
    if isinstance(key, OKPKey) and key.curve_name != "Ed25519":
        raise AcmeProblem(ErrorType.BAD_PUBLIC_KEY, "OKP account keys must be Ed25519")
    return key


def key_fits(alg: str, key: PublicKey) -> bool:
    """Whether `alg` is the algorithm of `key` (ES256 with P-256, RS256 with RSA, …)."""
    if alg in _CURVE_OF:
        return isinstance(key, ECKey) and key.curve_name == _CURVE_OF[alg]
    if alg == "RS256":
        return isinstance(key, RSAKey)
    return isinstance(key, OKPKey) and key.curve_name == "Ed25519"


def verify(token: Jws, key: PublicKey | OctKey, alg: str | None = None) -> None:
    """Check the signature with `key`; malformed when it does not verify (Boulder's answer)."""
    algorithm = alg or token.alg
    if not isinstance(key, OctKey) and not key_fits(algorithm, key):
        raise malformed(f"the JWS algorithm {algorithm} does not fit the account key")
    registry = acme_registry(algorithm)
    try:
        with warnings.catch_warnings():
            # RFC 9864 deprecates the polymorphic "EdDSA" name; RFC 8555 clients still send it.
            warnings.simplefilter("ignore", SecurityWarning)
            jws.deserialize_json(
                cast(FlattenedJSONSerialization, token.raw), key, registry=registry
            )
    except (JoseError, ValueError, TypeError):
        raise malformed("the JWS signature does not verify") from None


def acme_registry(alg: str) -> JWSRegistry:
    """A joserfc registry for one algorithm that knows ACME's header parameters (clients sign
    with it too: the test kit)."""
    return _Registry(header_registry=_ACME_HEADERS, algorithms=[alg])


def thumbprint(key: PublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the key authorization's second half."""
    return str(key.thumbprint())


def same_jwk(a: PublicKey, b: PublicKey) -> bool:
    return thumbprint(a) == thumbprint(b)
