"""The api's pure JWS checks (`certforge.api.acme.jws`): structure, header rules, keys."""

from __future__ import annotations

import warnings
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws as jose
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from certforge.api.acme import jws
from certforge.api.acme.errors import AcmeProblem
from certforge.common.acme import b64url

URL = "https://acme.example/acme/app/prof/new-order"


def signed(key: Any, alg: str, header: dict[str, Any], payload: bytes = b"{}") -> bytes:
    protected = {"alg": alg, "nonce": "n", "url": URL, **header}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        body = jose.serialize_json(
            {"protected": protected}, payload, key, registry=jws.acme_registry(alg)
        )
    return orjson.dumps(body)


def error_of(exc: pytest.ExceptionInfo[AcmeProblem]) -> str:
    return exc.value.error.value


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ECKey.generate_key("P-256"), "ES256"),
        (ECKey.generate_key("P-384"), "ES384"),
        (RSAKey.generate_key(2048), "RS256"),
        (OKPKey.generate_key("Ed25519"), "EdDSA"),
    ],
    ids=["ok/ES256", "ok/ES384", "ok/RS256", "ok/EdDSA"],
)
def test_each_algorithm_verifies(key: Any, alg: str) -> None:
    token = jws.parse(signed(key, alg, {"jwk": key.as_dict(private=False)}))
    jws.check_protected(token, key_by="jwk")
    public = jws.public_key(token.protected["jwk"])
    jws.verify(token, public)
    assert jws.thumbprint(public) == key.thumbprint()


def test_tampered_payload_does_not_verify() -> None:
    key = ECKey.generate_key("P-256")
    raw = orjson.loads(signed(key, "ES256", {"kid": "k"}))
    raw["payload"] = b64url(b'{"evil": 1}')
    with pytest.raises(AcmeProblem) as exc:
        jws.verify(jws.parse(orjson.dumps(raw)), jws.public_key(key.as_dict(private=False)))
    assert error_of(exc) == "malformed"


def test_post_as_get_is_an_empty_payload() -> None:
    key = ECKey.generate_key("P-256")
    assert jws.parse(signed(key, "ES256", {"kid": "k"}, b"")).post_as_get
    assert not jws.parse(signed(key, "ES256", {"kid": "k"}, b"{}")).post_as_get


@pytest.mark.parametrize(
    ("header", "key_by", "error"),
    [
        ({"alg": "HS256", "kid": "k"}, "kid", "badSignatureAlgorithm"),
        ({"alg": "none", "kid": "k"}, "kid", "badSignatureAlgorithm"),
        ({"alg": "ES256"}, "kid", "malformed"),
        ({"alg": "ES256", "kid": "k", "jwk": {}}, "either", "malformed"),
        ({"alg": "ES256", "kid": "k"}, "jwk", "malformed"),
        ({"alg": "ES256", "jwk": {}}, "kid", "malformed"),
        ({"alg": "ES256", "kid": 3}, "kid", "malformed"),
        ({"alg": "ES256", "kid": "k", "url": None}, "kid", "malformed"),
    ],
    ids=[
        "fail/hmac",
        "fail/none",
        "fail/no-key",
        "fail/both",
        "fail/kid-for-jwk",
        "fail/jwk-for-kid",
        "fail/kid-type",
        "fail/no-url",
    ],
)
def test_header_rules(header: dict[str, Any], key_by: str, error: str) -> None:
    protected = {"nonce": "n", "url": URL, **header}
    protected = {k: v for k, v in protected.items() if v is not None}
    body = {"protected": b64url(orjson.dumps(protected)), "payload": "", "signature": "AA"}
    with pytest.raises(AcmeProblem) as exc:
        jws.check_protected(jws.parse(orjson.dumps(body)), key_by=key_by)  # type: ignore[arg-type]
    assert error_of(exc) == error
    if error == "badSignatureAlgorithm":
        assert exc.value.document()["algorithms"] == list(jws.ALGORITHMS)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"payload": "", "signatures": []}',
        b'{"protected": "e30", "payload": "", "signature": "AA", "header": {}}',
        b'{"protected": "e30", "payload": "", "signature": "AA", "extra": 1}',
        b'{"protected": "e30=", "payload": "", "signature": "AA"}',
        b'{"protected": "WzFd", "payload": "", "signature": "AA"}',
        b'{"protected": 1, "payload": "", "signature": "AA"}',
    ],
    ids=[
        "fail/json",
        "fail/array",
        "fail/general",
        "fail/unprotected",
        "fail/extra",
        "fail/padding",
        "fail/header-array",
        "fail/protected-type",
    ],
)
def test_structure(body: bytes) -> None:
    with pytest.raises(AcmeProblem) as exc:
        jws.parse(body)
    assert error_of(exc) == "malformed"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "AAAA"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        "not an object",
    ],
    ids=["fail/symmetric", "fail/bad-point", "fail/type"],
)
def test_unusable_keys(jwk: Any) -> None:
    with pytest.raises(AcmeProblem) as exc:
        jws.public_key(jwk)
    assert error_of(exc) in ("badPublicKey", "malformed")


def test_weak_and_private_keys_are_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        weak = RSAKey.import_key(rsa.generate_private_key(65537, 1024)).as_dict(private=False)
    with pytest.raises(AcmeProblem) as exc:
        jws.public_key(weak)
    assert error_of(exc) == "badPublicKey"
    private = ECKey.generate_key("P-256").as_dict(private=True)
    with pytest.raises(AcmeProblem) as exc:
        jws.public_key(private)
    assert error_of(exc) == "badPublicKey"
    p521 = ECKey.generate_key("P-521").as_dict(private=False)
    with pytest.raises(AcmeProblem):
        jws.public_key(p521)


def test_algorithm_must_fit_the_key() -> None:
    p256 = jws.public_key(ECKey.generate_key("P-256").as_dict(private=False))
    assert jws.key_fits("ES256", p256)
    assert not jws.key_fits("ES384", p256)
    assert not jws.key_fits("RS256", p256)
    hmac = OctKey.generate_key(256)
    assert hmac.key_type == "oct"
