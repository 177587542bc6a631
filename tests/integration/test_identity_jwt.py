"""Machine identity without shared secrets: a workload logs in with a JWT from its platform.

A local OIDC issuer (a real HTTP server on 127.0.0.1 serving a discovery document and a JWKS)
signs tokens shaped like GitHub Actions' with RS256 and ES256; the api discovers its keys,
checks the token, and mints a short-lived access token that works like any other.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from admin_kit import API, ClientFor, create_identity, every, ok, put_member, uid
from certforge.common.db.tables import AuditEvent
from issuance_kit import audit_events, enroll, issue, new_request_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AUDIENCE = "https://certforge.test"


class OidcIssuer:
    """A minimal OIDC provider: discovery + JWKS over HTTP, tokens signed by the test."""

    def __init__(self) -> None:
        self.keys: list[RSAKey | ECKey] = [
            RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
            ECKey.generate_key("P-256", parameters={"kid": "ec-1"}),
        ]
        self.requests: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [k.as_dict(private=False) for k in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def key(self, kid: str) -> RSAKey | ECKey:
        return next(k for k in self.keys if k.kid == kid)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A GitHub Actions OIDC token's claims for a push to main of acme/shop."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "repo:acme/shop:ref:refs/heads/main",
            "repository": "acme/shop",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "workflow": "deploy",
            "event_name": "push",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "rsa-1", **overrides: Any) -> str:
        key = self.key(kid)
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
        return jwt.encode({"alg": alg, "kid": kid}, self.claims(**overrides), key)

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def oidc() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer()
    yield issuer
    issuer.close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


async def _machine(admin: httpx.AsyncClient, oidc: OidcIssuer, **jwt_config: Any) -> dict[str, Any]:
    """A machine identity trusting `oidc` for acme/shop on main or a v* tag."""
    identity = await create_identity(admin, name=uid("gh"))
    config = {
        "issuer": oidc.url,
        "audience": AUDIENCE,
        "bound_claims": {"repository": "acme/shop", "ref": ["refs/heads/main", "refs/tags/v*"]},
        **jwt_config,
    }
    method = ok(
        await admin.post(
            f"{API}/identities/{identity['id']}/auth-methods",
            json={"name": "github", "jwt": config},
        ),
        201,
    )
    return {**identity, "method": method}


async def _login(
    anonymous: httpx.AsyncClient, identity: str, token: str, request_id: str | None = None
) -> httpx.Response:
    headers = {"X-Request-Id": request_id} if request_id else {}
    return await anonymous.post(
        f"{API}/auth/login",
        json={"method": "jwt", "identity": identity, "jwt": token},
        headers=headers,
    )


async def _refusal(api_app: Any, anonymous: httpx.AsyncClient, identity: str, token: str) -> str:
    """Log in expecting the generic 401; return the reason the audit log recorded."""
    rid = new_request_id()
    r = await _login(anonymous, identity, token, rid)
    assert r.status_code == 401, r.text
    assert r.json()["detail"] == "login refused"
    entries: list[AuditEvent] = await audit_events(api_app, request_id=rid)
    assert [(e.action, e.outcome) for e in entries] == [("auth.login", "denied")]
    reason: str = entries[0].details["reason"]
    assert reason not in r.text
    return reason


async def test_github_actions_token_logs_in_and_issues_a_certificate(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    client_for: ClientFor,
    api_app: Any,
    oidc: OidcIssuer,
) -> None:
    enrollment = await enroll(admin)
    machine = await _machine(admin, oidc)
    await put_member(admin, enrollment.app, machine["id"], "operator")

    for kid in ("rsa-1", "ec-1"):  # RS256 and ES256
        rid = new_request_id()
        r = await _login(anonymous, machine["name"], oidc.token(kid), rid)
        body = ok(r, 201)
        assert body["token_type"] == "Bearer"
        assert body["access_token"].startswith("cf_")
        assert 0 < body["expires_in"] <= 300  # capped by the JWT's own exp (300 s)
        (entry,) = await audit_events(api_app, request_id=rid)
        assert (entry.action, entry.outcome, entry.actor_name) == (
            "auth.login",
            "success",
            machine["name"],
        )
        assert entry.details["sub"] == "repo:acme/shop:ref:refs/heads/main"
        assert body["access_token"] not in json.dumps(entry.details)

    ci = client_for(body["access_token"])
    issued = await issue(ci, enrollment, common_name="shop.example.com")
    cert = x509.load_pem_x509_certificate(issued["certificate"]["certificate"].encode())
    assert cert.subject.rfc4514_string() == "CN=shop.example.com"

    tokens = await every(admin, f"{API}/identities/{machine['id']}/tokens")
    access = [t for t in tokens if t["kind"] == "access"]
    assert len(access) == 2
    assert {t["auth_method_id"] for t in access} == {machine["method"]["id"]}
    assert all("token" not in t and "token_hash" not in t for t in tokens)
    used = next(t for t in access if t["id"] == body["token_id"])
    assert used["last_used_at"] is not None
    assert used["expires_at"] is not None

    # a tag matching the glob logs in too, by id instead of name
    ok(await _login(anonymous, machine["id"], oidc.token(ref="refs/tags/v1.2.0")), 201)


async def test_ttl_from_the_method_and_outliving_the_jwt(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, oidc: OidcIssuer
) -> None:
    machine = await _machine(admin, oidc, token_ttl="5m", allow_beyond_jwt_expiry=True)
    body = ok(await _login(anonymous, machine["name"], oidc.token(exp=int(time.time()) + 30)), 201)
    assert 290 <= body["expires_in"] <= 300
    capped = await _machine(admin, oidc, token_ttl="5m")
    body = ok(await _login(anonymous, capped["name"], oidc.token(exp=int(time.time()) + 30)), 201)
    assert body["expires_in"] <= 30


def _forged_signature(oidc: OidcIssuer) -> str:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    return jwt.encode({"alg": "RS256", "kid": "rsa-1"}, oidc.claims(), impostor)


def _alg_none(oidc: OidcIssuer) -> str:
    return _unsigned({"alg": "none", "kid": "rsa-1"}, oidc.claims()) + "."


def _hs256_with_public_key(oidc: OidcIssuer) -> str:
    public_pem = oidc.key("rsa-1").as_pem(private=False)
    signing_input = _unsigned({"alg": "HS256", "kid": "rsa-1"}, oidc.claims())
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def _wrong_kid(oidc: OidcIssuer) -> str:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "not-at-the-issuer"})
    return jwt.encode({"alg": "RS256", "kid": "not-at-the-issuer"}, oidc.claims(), stranger)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda o: o.token(aud="https://elsewhere"), "claims", id="fail/audience"),
        pytest.param(
            lambda o: o.token(exp=int(time.time()) - 600, iat=int(time.time()) - 900),
            "claims",
            id="fail/expired",
        ),
        pytest.param(
            lambda o: o.token(nbf=int(time.time()) + 600), "claims", id="fail/not-yet-valid"
        ),
        pytest.param(
            lambda o: o.token(iat=int(time.time()) + 600), "claims", id="fail/issued-in-future"
        ),
        pytest.param(lambda o: o.token(exp=None), "claims", id="fail/no-exp"),
        pytest.param(_wrong_kid, "unknown kid", id="fail/wrong-kid"),
        pytest.param(_forged_signature, "signature", id="fail/forged-signature"),
        pytest.param(_alg_none, "algorithm 'none'", id="fail/alg-none"),
        pytest.param(_hs256_with_public_key, "algorithm 'HS256'", id="fail/hs256-public-key"),
        pytest.param(
            lambda o: o.token(repository="acme/other"), "bound claim 'repository'", id="fail/repo"
        ),
        pytest.param(
            lambda o: o.token(ref="refs/heads/feature"), "bound claim 'ref'", id="fail/ref"
        ),
        pytest.param(lambda o: o.token(ref=None), "bound claim 'ref'", id="fail/claim-missing"),
        pytest.param(
            lambda o: o.token(iss="https://evil.example"), "no jwt auth method", id="fail/issuer"
        ),
        pytest.param(lambda o: "not-a-jwt", "not a compact JWS", id="fail/garbage"),
    ],
)
async def test_bad_tokens_are_a_generic_401_with_the_reason_in_the_audit_log(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    api_app: Any,
    oidc: OidcIssuer,
    make: Any,
    reason: str,
) -> None:
    machine = await _machine(admin, oidc)
    recorded = await _refusal(api_app, anonymous, machine["name"], make(oidc))
    assert reason in recorded, recorded


async def test_unknown_or_disabled_identity_is_the_same_401(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any, oidc: OidcIssuer
) -> None:
    assert await _refusal(api_app, anonymous, uid("nobody"), oidc.token()) == "unknown identity"
    machine = await _machine(admin, oidc)
    ok(await admin.delete(f"{API}/identities/{machine['id']}"), 204)
    reason = await _refusal(api_app, anonymous, machine["name"], oidc.token())
    assert reason == "identity is disabled"


async def test_a_used_jti_is_refused(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any, oidc: OidcIssuer
) -> None:
    machine = await _machine(admin, oidc)
    token = oidc.token()
    ok(await _login(anonymous, machine["name"], token), 201)
    assert "replay" in await _refusal(api_app, anonymous, machine["name"], token)
    # without a jti the issuer gives us nothing to track: the same JWT may log in again
    no_jti = oidc.token(jti=None)
    ok(await _login(anonymous, machine["name"], no_jti), 201)
    ok(await _login(anonymous, machine["name"], no_jti), 201)


async def test_key_rotation_at_the_issuer_is_picked_up_without_hammering_it(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any, oidc: OidcIssuer
) -> None:
    machine = await _machine(admin, oidc)
    ok(await _login(anonymous, machine["name"], oidc.token("rsa-1")), 201)
    fetched = len(oidc.requests)
    assert fetched == 2  # discovery + JWKS, once
    ok(await _login(anonymous, machine["name"], oidc.token("ec-1")), 201)
    assert len(oidc.requests) == fetched  # served from the cache

    retired = oidc.key("rsa-1")
    oidc.keys = [RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})]
    cache = api_app.state.certforge.login_keys
    cache.min_refresh = 60.0
    # an unknown kid right after a fetch: refused, and the issuer is not asked again
    for _ in range(3):
        assert "unknown kid" in await _refusal(
            api_app, anonymous, machine["name"], oidc.token("rsa-2")
        )
    assert len(oidc.requests) == fetched
    cache.min_refresh = 0.2
    await asyncio.sleep(0.3)
    ok(await _login(anonymous, machine["name"], oidc.token("rsa-2")), 201)
    assert len(oidc.requests) == fetched + 2
    # the retired key no longer logs in
    cache.min_refresh = 60.0
    oidc.keys.append(retired)  # signs, but is not published any more
    retired_token = oidc.token("rsa-1")
    oidc.keys.pop()
    assert "unknown kid" in await _refusal(api_app, anonymous, machine["name"], retired_token)
    cache.min_refresh = api_app.state.certforge.settings.login_jwks_min_refresh_seconds


async def test_a_revoked_access_token_stops_working_within_a_second(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    client_for: ClientFor,
    oidc: OidcIssuer,
) -> None:
    machine = await _machine(admin, oidc)
    body = ok(await _login(anonymous, machine["name"], oidc.token()), 201)
    ci = client_for(body["access_token"])
    assert ok(await ci.get(f"{API}/me"))["name"] == machine["name"]
    started = time.monotonic()
    ok(await admin.delete(f"{API}/identities/{machine['id']}/tokens/{body['token_id']}"), 204)
    assert (await ci.get(f"{API}/me")).status_code == 401
    assert time.monotonic() - started < 1.0


async def test_deleting_the_method_revokes_its_tokens(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    client_for: ClientFor,
    api_app: Any,
    oidc: OidcIssuer,
) -> None:
    machine = await _machine(admin, oidc)
    body = ok(await _login(anonymous, machine["name"], oidc.token()), 201)
    ci = client_for(body["access_token"])
    url = f"{API}/identities/{machine['id']}/auth-methods"
    assert [m["name"] for m in ok(await admin.get(url))] == ["github"]
    method_id = machine["method"]["id"]
    assert ok(await admin.get(f"{url}/{method_id}"))["jwt"]["token_ttl"] == "15m"
    ok(await admin.delete(f"{url}/{method_id}"), 204)
    assert (await ci.get(f"{API}/me")).status_code == 401
    assert "no jwt auth method" in await _refusal(api_app, anonymous, machine["name"], oidc.token())
    assert (await admin.get(f"{url}/{method_id}")).status_code == 404


async def test_login_attempts_are_rate_limited_per_identity(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any, oidc: OidcIssuer
) -> None:
    machine = await _machine(admin, oidc)
    limit = api_app.state.certforge.settings.login_attempts_per_identity
    for _ in range(limit):
        assert (await _login(anonymous, machine["name"], "x.y.z")).status_code == 401
    rid = new_request_id()
    r = await _login(anonymous, machine["name"], oidc.token(), rid)  # a valid JWT, too late
    assert r.status_code == 429, r.text
    assert r.json()["type"] == "urn:certforge:problem:rate-limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60 // limit + 1
    entries: list[AuditEvent] = await audit_events(api_app, request_id=rid)
    assert [(e.action, e.outcome) for e in entries] == [("auth.login", "denied")]
    assert entries[0].details["reason"].startswith("too many login-per-identity requests")


async def test_static_jwks_and_pem_keys_instead_of_discovery(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, oidc: OidcIssuer
) -> None:
    jwks = {"keys": [oidc.key("ec-1").as_dict(private=False)]}
    by_jwks = await _machine(admin, oidc, jwks=jwks)
    ok(await _login(anonymous, by_jwks["name"], oidc.token("ec-1")), 201)
    pem = oidc.key("rsa-1").as_pem(private=False).decode()
    by_pem = await _machine(admin, oidc, public_keys=[pem])
    ok(await _login(anonymous, by_pem["name"], oidc.token("rsa-1")), 201)
    assert oidc.requests == []  # never asked the issuer


@pytest.mark.parametrize(
    ("config", "field"),
    [
        pytest.param({"issuer": "http://idp.example.com"}, "jwt.issuer", id="fail/http-remote"),
        pytest.param({"issuer": "ftp://x"}, "jwt.issuer", id="fail/scheme"),
        pytest.param({"audience": ""}, "jwt.audience", id="fail/audience-empty"),
        pytest.param({"algorithms": ["HS256"]}, "jwt.algorithms", id="fail/hmac"),
        pytest.param({"algorithms": ["none"]}, "jwt.algorithms", id="fail/none"),
        pytest.param({"token_ttl": "2d"}, "jwt.token_ttl", id="fail/ttl-long"),
        pytest.param({"bound_claims": {"ref": []}}, "jwt.bound_claims", id="fail/claim-empty"),
        pytest.param({"jwks": {"keys": []}}, "jwt.jwks", id="fail/jwks-empty"),
        pytest.param(
            {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "jwt.jwks", id="fail/jwks-hmac"
        ),
        pytest.param({"public_keys": ["not pem"]}, "jwt.public_keys", id="fail/pem"),
        pytest.param({"colour": "red"}, "jwt.colour", id="fail/unknown-field"),
    ],
)
async def test_bad_auth_method_is_a_precise_422(
    admin: httpx.AsyncClient, oidc: OidcIssuer, config: dict[str, Any], field: str
) -> None:
    identity = await create_identity(admin)
    body = {"name": "m", "jwt": {"issuer": oidc.url, "audience": AUDIENCE, **config}}
    r = await admin.post(f"{API}/identities/{identity['id']}/auth-methods", json=body)
    assert r.status_code == 422, r.text
    assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()


async def test_weak_rsa_and_private_keys_are_refused_in_a_method(
    admin: httpx.AsyncClient, oidc: OidcIssuer
) -> None:
    identity = await create_identity(admin)
    url = f"{API}/identities/{identity['id']}/auth-methods"
    with pytest.warns(SecurityWarning):
        weak = RSAKey.generate_key(1024, parameters={"kid": "weak"}, private=False)
    private = oidc.key("ec-1").as_dict(private=True)
    for keys, words in (([weak.as_dict(private=False)], "2048"), ([private], "private")):
        body = {
            "name": "m",
            "jwt": {"issuer": oidc.url, "audience": AUDIENCE, "jwks": {"keys": keys}},
        }
        r = await admin.post(url, json=body)
        assert r.status_code == 422, r.text
        assert words in r.text
        assert private["d"] not in r.text


async def test_auth_methods_need_a_product_admin(
    admin: httpx.AsyncClient, client_for: ClientFor, oidc: OidcIssuer
) -> None:
    someone = await create_identity(admin)
    caller = client_for(someone["token"])
    r = await caller.post(
        f"{API}/identities/{someone['id']}/auth-methods",
        json={"name": "m", "jwt": {"issuer": oidc.url, "audience": AUDIENCE}},
    )
    assert r.status_code == 403
    assert (await caller.get(f"{API}/identities/{someone['id']}/tokens")).status_code == 403


async def test_an_unreachable_issuer_is_a_401_and_not_asked_again_at_once(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: Any, oidc: OidcIssuer
) -> None:
    machine = await _machine(admin, oidc)
    token = oidc.token()
    oidc.close()  # the issuer goes away before the api ever fetched its keys
    first = await _refusal(api_app, anonymous, machine["name"], token)
    assert first.startswith("issuer keys unavailable: ")
    again = await _refusal(api_app, anonymous, machine["name"], oidc.token())
    assert again == "issuer keys unavailable (last fetch failed)"


async def test_replacing_a_method_applies_its_new_rules_and_revokes_its_tokens(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    client_for: ClientFor,
    api_app: Any,
    oidc: OidcIssuer,
) -> None:
    machine = await _machine(admin, oidc)
    body = ok(await _login(anonymous, machine["name"], oidc.token()), 201)
    url = f"{API}/identities/{machine['id']}/auth-methods/{machine['method']['id']}"
    narrower = {
        "name": "github-tags",
        "jwt": {
            "issuer": oidc.url,
            "audience": AUDIENCE,
            "bound_claims": {"repository": "acme/shop", "ref": "refs/tags/v*"},
            "token_ttl": "5m",
        },
    }
    replaced = ok(await admin.put(url, json=narrower))
    assert replaced["name"] == "github-tags"
    assert replaced["jwt"]["token_ttl"] == "5m"
    assert (await client_for(body["access_token"]).get(f"{API}/me")).status_code == 401
    assert "bound claim 'ref'" in await _refusal(api_app, anonymous, machine["name"], oidc.token())
    ok(await _login(anonymous, machine["name"], oidc.token(ref="refs/tags/v2.0.0")), 201)
