"""The pure parts of JWT login: the checks with a fixed clock, claim globs, expiry, rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from certforge.api.domain.jwt_login import (
    ALLOWED_ALGORITHMS,
    JwtRules,
    LoginRefused,
    access_token_expiry,
    check_jwks,
    claim_matches,
    pem_to_jwk,
    usable_keys,
    verify,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RSA = RSAKey.generate_key(2048, parameters={"kid": "r"})
EC = ECKey.generate_key("P-256", parameters={"kid": "e"})
ED = OKPKey.generate_key("Ed25519", parameters={"kid": "d"})
KEYS = usable_keys({"keys": [k.as_dict(private=False) for k in (RSA, EC, ED)]})
RULES = JwtRules(
    issuer="https://idp",
    audience="cf",
    bound_claims={"namespace": ["prod-*"], "serviceaccount": ["renewer"]},
    algorithms=ALLOWED_ALGORITHMS,
    leeway=timedelta(seconds=30),
)


def _token(key: Any = RSA, alg: str = "RS256", **claims: Any) -> str:
    base: dict[str, Any] = {
        "iss": "https://idp",
        "aud": ["cf", "other"],
        "exp": int((NOW + timedelta(minutes=10)).timestamp()),
        "iat": int(NOW.timestamp()),
        "namespace": "prod-eu",
        "serviceaccount": "renewer",
    }
    base.update(claims)
    header = {"alg": alg, "kid": key.kid}
    return jwt.encode(header, {k: v for k, v in base.items() if v}, key, algorithms=[alg])


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        pytest.param(RSA, "RS256", id="ok/rs256"),
        pytest.param(RSA, "PS384", id="ok/ps384"),
        pytest.param(EC, "ES256", id="ok/es256"),
        pytest.param(ED, "Ed25519", id="ok/ed25519"),
    ],
)
def test_a_good_token_verifies(key: Any, alg: str) -> None:
    verified = verify(_token(key, alg, jti="j1"), KEYS, RULES, NOW)
    assert verified.jti == "j1"
    assert verified.expires_at == NOW + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("claims", "at", "reason"),
    [
        pytest.param({}, NOW + timedelta(minutes=10, seconds=29), None, id="ok/exp-in-leeway"),
        pytest.param({}, NOW + timedelta(minutes=10, seconds=31), "claims", id="fail/expired"),
        pytest.param({"nbf": int(NOW.timestamp()) + 29}, NOW, None, id="ok/nbf-in-leeway"),
        pytest.param({"nbf": int(NOW.timestamp()) + 31}, NOW, "claims", id="fail/nbf"),
        pytest.param({"iat": int(NOW.timestamp()) + 31}, NOW, "claims", id="fail/iat-future"),
        pytest.param({"aud": "else"}, NOW, "claims", id="fail/aud"),
        pytest.param({"iss": "https://x"}, NOW, "claims", id="fail/iss"),
        pytest.param({"namespace": "dev"}, NOW, "bound claim 'namespace'", id="fail/glob"),
        pytest.param({"serviceaccount": None}, NOW, "bound claim", id="fail/missing-claim"),
    ],
)
def test_time_and_claim_checks(claims: dict[str, Any], at: datetime, reason: str | None) -> None:
    token = _token(**claims)
    if reason is None:
        verify(token, KEYS, RULES, at)
        return
    with pytest.raises(LoginRefused) as refused:
        verify(token, KEYS, RULES, at)
    assert reason in refused.value.reason


def test_an_algorithm_outside_the_method_is_refused() -> None:
    rules = JwtRules(**{**RULES.__dict__, "algorithms": ["ES256"]})
    with pytest.raises(LoginRefused, match="algorithm 'RS256' not allowed"):
        verify(_token(), KEYS, rules, NOW)


@pytest.mark.parametrize(
    ("value", "patterns", "expected"),
    [
        pytest.param("refs/heads/main", ["refs/heads/main"], True, id="ok/exact"),
        pytest.param("refs/tags/v1.2", ["refs/tags/v*"], True, id="ok/glob"),
        pytest.param(["a", "b"], ["b"], True, id="ok/list-claim"),
        pytest.param(True, ["true"], True, id="ok/bool"),
        pytest.param(42, ["4?"], True, id="ok/number"),
        pytest.param("refs/heads/mainx", ["refs/heads/main"], False, id="fail/exact-is-exact"),
        pytest.param("Main", ["main"], False, id="fail/case"),
        pytest.param({"a": 1}, ["*"], False, id="fail/object"),
        pytest.param(None, ["*"], False, id="fail/absent"),
    ],
)
def test_claim_matches(value: object, patterns: list[str], expected: bool) -> None:
    assert claim_matches(value, patterns) is expected


def test_access_token_expiry_is_capped_by_the_jwt_unless_allowed() -> None:
    jwt_exp = NOW + timedelta(minutes=2)
    assert access_token_expiry(NOW, timedelta(minutes=15), jwt_exp, False) == jwt_exp
    assert access_token_expiry(NOW, timedelta(minutes=15), jwt_exp, True) == NOW + timedelta(
        minutes=15
    )
    assert access_token_expiry(NOW, timedelta(minutes=1), jwt_exp, False) == NOW + timedelta(
        minutes=1
    )


def test_keys_weak_private_or_symmetric_are_not_usable() -> None:
    with pytest.warns(SecurityWarning, match="2048"):
        weak = RSAKey.generate_key(1024, parameters={"kid": "w"})
    jwks = {
        "keys": [
            weak.as_dict(private=False),
            EC.as_dict(private=True),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {**RSA.as_dict(private=False), "use": "enc"},
            RSA.as_dict(private=False),
        ]
    }
    assert [k.kid for k in usable_keys(jwks)] == ["r"]
    for bad in jwks["keys"][:3]:
        with pytest.raises(ValueError, match=r"keys\[0\]"):
            check_jwks({"keys": [bad]})


def test_pem_keys_have_no_kid_and_verify_any_token() -> None:
    keys = usable_keys({"keys": [pem_to_jwk(EC.as_pem(private=False).decode())]})
    assert [k.kid for k in keys] == [None]
    verify(_token(EC, "ES256"), keys, RULES, NOW)
    with pytest.raises(ValueError, match="private"):
        pem_to_jwk(EC.as_pem(private=True).decode())
