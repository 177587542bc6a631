"""A small ACME client for the tests, and the stand-ins the api's ACME tests need.

`AcmeClient` speaks RFC 8555 to the in-process api: it signs flattened JWS with joserfc (the
library the server verifies with, but signing is the client's side of it: a wrong signature is
still caught because the server checks it against the key it stored, not the one sent), keeps
the last `Replay-Nonce`, and offers helpers for accounts, EAB, key rollover, orders and
POST-as-GET reads. Every method returns the raw `httpx.Response` so tests judge status, headers
and problem documents themselves.

Stand-ins, each in one place so the lead can switch them when the real component lands:
- `enable_acme` / `create_eab_key` write the enrollment settings and EAB keys directly to the
  database (the admin REST API for them is being built on branch wt-acmeadmin).
- `record_verdict` writes exactly what the validator records for a challenge (the shared
  semantics of the ACME foundation), for tests about the api alone.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from certforge.api.acme.jws import acme_registry
from certforge.common.acme import ErrorType, b64url, eab_key_aad, problem
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import ChallengeValidated
from issuance_kit import Enrollment

ClientFor = Callable[[str | None], httpx.AsyncClient]

JOSE = {"Content-Type": "application/jose+json"}
AccountKey = ECKey | RSAKey | OKPKey

_ALG = {"P-256": "ES256", "P-384": "ES384"}


def alg_of(key: AccountKey) -> str:
    if isinstance(key, ECKey):
        return _ALG[key.curve_name]
    if isinstance(key, RSAKey):
        return "RS256"
    return "EdDSA"


def new_key(kind: str = "ES256") -> AccountKey:
    if kind == "ES256":
        return ECKey.generate_key("P-256")
    if kind == "ES384":
        return ECKey.generate_key("P-384")
    if kind == "RS256":
        return RSAKey.generate_key(2048)
    return OKPKey.generate_key("Ed25519")


def public_jwk(key: AccountKey) -> dict[str, Any]:
    return {k: v for k, v in key.as_dict(private=False).items() if k != "kid"}


def sign(
    key: AccountKey | OctKey,
    payload: dict[str, Any] | bytes | None,
    protected: dict[str, Any],
) -> dict[str, Any]:
    """A flattened JWS of `payload` (None: POST-as-GET) under `protected` (which names alg)."""
    if payload is None:
        body = b""
    else:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA", as RFC 8555 clients send
        result: dict[str, Any] = jws.serialize_json(
            {"protected": protected}, body, key, registry=acme_registry(protected["alg"])
        )
    return result


# --- the database stand-ins ------------------------------------------------------------------


async def enable_acme(
    api_app: Any,
    enrollment: Enrollment,
    *,
    eab_required: bool = False,
    challenge_types: list[str] | None = None,
    renew_before_days: int = 30,
    terms_of_service: str | None = None,
    website: str | None = None,
) -> None:
    """Turn ACME enrollment on for the enrollment's attachment (stand-in for
    `PUT …/enrollment/acme`)."""
    db = api_app.state.certforge.db
    await db.execute(
        """
        UPDATE application_profiles SET acme_enabled = TRUE, acme_eab_required = $3,
               acme_challenge_types = $4, acme_renew_before_days = $5,
               acme_terms_of_service = $6, acme_website = $7
        WHERE application_id = $1 AND profile_id = $2
        """,
        UUID(enrollment.app_id),
        UUID(enrollment.profile_id),
        eab_required,
        challenge_types or ["http-01", "dns-01", "tls-alpn-01"],
        renew_before_days,
        terms_of_service,
        website,
    )


async def create_eab_key(api_app: Any, enrollment: Enrollment) -> tuple[str, str]:
    """`(key id, base64url HMAC key)` of a new EAB key (stand-in for `POST …/eab-keys`)."""
    context = api_app.state.certforge
    key_id = "kid-" + secrets.token_hex(8)
    raw = secrets.token_bytes(32)
    await context.db.execute(
        """
        INSERT INTO acme_eab_keys (id, application_id, profile_id, name, encrypted_hmac_key,
                                   key_kek_id, created_at)
        VALUES ($1, $2, $3, 'test', $4, $5, now())
        """,
        key_id,
        UUID(enrollment.app_id),
        UUID(enrollment.profile_id),
        context.leaf_keys.encrypt(raw, eab_key_aad(key_id)),
        context.leaf_keys.active_kid,
    )
    return key_id, b64url(raw)


async def record_verdict(api_app: Any, challenge_url: str, *, valid: bool = True) -> None:
    """What the validator records for a `processing` challenge (stand-in, same transaction
    shape): the challenge valid/invalid with attempts+1, its authorization likewise, the order
    ready when every authorization is valid or invalid with the problem, and the
    `acme.challenge.validated` event through the outbox.

    When another test of the session started the real validator, it consumes the command of
    the challenge too and may judge first (these tests' names resolve nowhere for it, so it
    finds them invalid). The stand-in's verdict then replaces its verdict, so a test about the
    api alone gets the same outcome whichever ran first; once the stand-in has written, the
    validator leaves the challenge alone (it only judges `processing` ones)."""
    from certforge.common.db.columns import insert_sql, values
    from certforge.common.db.tables import OutboxMessage
    from certforge.common.outbox import MESSAGE_COLUMNS, message_row

    context = api_app.state.certforge
    challenge_id = UUID(challenge_url.rsplit("/", 1)[1])
    now = datetime.now(UTC)
    error = (
        None
        if valid
        else problem(ErrorType.INCORRECT_RESPONSE, "stand-in: wrong answer", status=403)
    )
    async with context.db.acquire() as conn, conn.transaction():
        # the order's row first, as the validator locks it: the same lock order, no deadlock
        await conn.execute(
            "SELECT o.id FROM acme_orders o JOIN acme_authorizations z ON z.order_id = o.id "
            "JOIN acme_challenges c ON c.authorization_id = z.id WHERE c.id = $1 "
            "FOR UPDATE OF o",
            challenge_id,
        )
        row = await conn.fetchrow(
            """
            UPDATE acme_challenges SET status = $2::text, error = $3, attempts = attempts + 1,
                   validated_at = CASE WHEN $2::text = 'valid' THEN $4::timestamptz END,
                   updated_at = $4::timestamptz
            WHERE id = $1 AND status IN ('processing', 'valid', 'invalid')
            RETURNING authorization_id, type
            """,
            challenge_id,
            "valid" if valid else "invalid",
            error,
            now,
        )
        assert row is not None, "the challenge was never answered"
        authz = await conn.fetchrow(
            "UPDATE acme_authorizations SET status = $2, updated_at = $3 WHERE id = $1 "
            "RETURNING order_id, identifier_value",
            row["authorization_id"],
            "valid" if valid else "invalid",
            now,
        )
        if valid:
            await conn.execute(
                """
                UPDATE acme_orders SET status = 'ready', error = NULL, updated_at = $2
                WHERE id = $1 AND status IN ('pending', 'invalid') AND NOT EXISTS (
                    SELECT 1 FROM acme_authorizations WHERE order_id = $1 AND status <> 'valid')
                """,
                authz["order_id"],
                now,
            )
        else:
            await conn.execute(
                "UPDATE acme_orders SET status = 'invalid', error = $2, updated_at = $3 "
                "WHERE id = $1 AND status IN ('pending', 'ready', 'invalid')",
                authz["order_id"],
                error,
                now,
            )
        app = await conn.fetchrow(
            "SELECT a.id, a.slug FROM applications a JOIN acme_orders o "
            "ON o.application_id = a.id WHERE o.id = $1",
            authz["order_id"],
        )
        event = ChallengeValidated(
            challenge_id=challenge_id,
            authorization_id=row["authorization_id"],
            order_id=authz["order_id"],
            application_id=app["id"],
            application=app["slug"],
            type=row["type"],
            identifier=authz["identifier_value"],
            status="valid" if valid else "invalid",
            error=error,
        )
        message = message_row(
            context.subjects.event(app["slug"], ChallengeValidated.event_name),
            CloudEvent.wrap(event, source="/certforge/validator"),
        )
        await conn.execute(
            insert_sql(OutboxMessage, MESSAGE_COLUMNS), *values(message, MESSAGE_COLUMNS)
        )


# --- scenario helpers (in-process api) ---

BASE = "http://certforge.test"


def directory_url(enrollment: Enrollment) -> str:
    return f"{BASE}/acme/{enrollment.app}/{enrollment.profile}/directory"


async def acme_client(
    client_for: Callable[[str | None], httpx.AsyncClient],
    enrollment: Enrollment,
    *,
    kind: str = "ES256",
) -> AcmeClient:
    return await AcmeClient(client_for(None), directory_url(enrollment), key=new_key(kind)).load()


async def registered(client_for: ClientFor, enrollment: Enrollment, **kw: Any) -> AcmeClient:
    client = await acme_client(client_for, enrollment, **kw)
    r = await client.register(contact=["mailto:ops@example.com"])
    assert r.status_code == 201, r.text
    return client


async def ready_order(client: AcmeClient, api_app: Any, *names: str) -> dict[str, Any]:
    r = await client.new_order(*names)
    assert r.status_code == 201, r.text
    order_url = r.headers["location"]
    order = r.json()
    for url in await client.challenge_urls(order):
        answered = await client.post(url, {})
        assert answered.status_code == 200, answered.text
        await record_verdict(api_app, url)
    order = (await client.get(order_url)).json()
    assert order["status"] == "ready", order
    order["url"] = order_url
    return order


async def issued(client: AcmeClient, api_app: Any, *names: str) -> tuple[dict[str, Any], Any]:
    order = await ready_order(client, api_app, *names)
    csr, key = csr_der(list(names))
    r = await client.finalize(order, csr)
    assert r.status_code == 200, r.text
    done = await client.wait_order(order["url"])
    done["url"] = order["url"]
    return done, key


# --- the client ------------------------------------------------------------------------------


@dataclass
class AcmeClient:
    http: httpx.AsyncClient
    directory_url: str
    key: AccountKey = field(default_factory=new_key)
    kid: str | None = None
    nonce: str | None = None
    directory: dict[str, Any] = field(default_factory=dict)

    async def load(self) -> AcmeClient:
        r = await self.http.get(self.directory_url)
        assert r.status_code == 200, r.text
        self.directory = r.json()
        return self

    def _keep(self, response: httpx.Response) -> httpx.Response:
        if "replay-nonce" in response.headers:
            self.nonce = response.headers["replay-nonce"]
        return response

    async def new_nonce(self) -> str:
        r = self._keep(await self.http.head(self.directory["newNonce"]))
        assert r.status_code == 200, r.text
        assert self.nonce is not None
        return self.nonce

    async def take_nonce(self) -> str:
        if self.nonce is None:
            await self.new_nonce()
        nonce, self.nonce = self.nonce, None
        assert nonce is not None
        return nonce

    async def signed_body(
        self,
        url: str,
        payload: dict[str, Any] | bytes | None,
        *,
        use_jwk: bool = False,
        key: AccountKey | None = None,
        nonce: str | None = None,
        header: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        key = key or self.key
        protected: dict[str, Any] = {
            "alg": alg_of(key),
            "nonce": nonce if nonce is not None else await self.take_nonce(),
            "url": url,
        }
        if use_jwk or self.kid is None:
            protected["jwk"] = public_jwk(key)
        else:
            protected["kid"] = self.kid
        protected.update(header or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        return sign(key, payload, protected)

    async def post(
        self,
        url: str,
        payload: dict[str, Any] | bytes | None,
        **options: Any,
    ) -> httpx.Response:
        """A signed POST (`payload` None: POST-as-GET)."""
        body = await self.signed_body(url, payload, **options)
        return await self.post_raw(url, orjson.dumps(body))

    async def post_raw(
        self, url: str, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self._keep(await self.http.post(url, content=body, headers=headers or JOSE))

    async def get(self, url: str) -> httpx.Response:
        """POST-as-GET."""
        return await self.post(url, None)

    # --- accounts ---

    def eab(self, key_id: str, hmac_key: str, *, url: str | None = None) -> dict[str, Any]:
        """The `externalAccountBinding` JWS over this client's key (RFC 8555 §7.3.4)."""
        from certforge.common.acme import b64url_decode

        protected = {"alg": "HS256", "kid": key_id, "url": url or self.directory["newAccount"]}
        return sign(
            OctKey.import_key(b64url_decode(hmac_key)),
            orjson.dumps(public_jwk(self.key)),
            protected,
        )

    async def register(self, **payload: Any) -> httpx.Response:
        r = await self.post(
            self.directory["newAccount"], {"termsOfServiceAgreed": True, **payload}, use_jwk=True
        )
        if r.status_code in (200, 201):
            self.kid = r.headers["location"]
        return r

    async def key_change(self, new: AccountKey, *, old: AccountKey | None = None) -> httpx.Response:
        url = self.directory["keyChange"]
        inner = sign(
            new,
            {"account": self.kid, "oldKey": public_jwk(old or self.key)},
            {"alg": alg_of(new), "jwk": public_jwk(new), "url": url},
        )
        return await self.post(url, orjson.dumps(inner))

    # --- orders ---

    async def new_order(self, *names: str, **payload: Any) -> httpx.Response:
        identifiers = [{"type": identifier_type(n), "value": n} for n in names]
        return await self.post(self.directory["newOrder"], {"identifiers": identifiers, **payload})

    async def challenge_urls(self, order: dict[str, Any], kind: str = "http-01") -> list[str]:
        urls = []
        for authz_url in order["authorizations"]:
            authz = (await self.get(authz_url)).json()
            urls += [c["url"] for c in authz["challenges"] if c["type"] == kind]
        return urls

    async def finalize(self, order: dict[str, Any], csr: bytes) -> httpx.Response:
        return await self.post(order["finalize"], {"csr": b64url(csr)})

    async def wait_order(
        self, order_url: str, status: str = "valid", seconds: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            r = await self.get(order_url)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["status"] == status:
                return body
            assert body["status"] in ("pending", "ready", "processing"), body
            assert time.monotonic() < deadline, f"order still {body['status']}"
            await asyncio.sleep(0.1)


def identifier_type(name: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return "dns"
    return "ip"


def csr_der(
    names: list[str], *, key: Any = None, common_name: str | None = None
) -> tuple[bytes, Any]:
    """A DER CSR naming `names` (DNS or IP SANs), and its private key."""
    import ipaddress

    key = key or ec.generate_private_key(ec.SECP256R1())
    general: list[x509.GeneralName] = []
    for name in names:
        if identifier_type(name) == "ip":
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        else:
            general.append(x509.DNSName(name))
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER), key


def acme_problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """Assert `response` is the ACME problem `error` with `status`, carrying a fresh nonce and
    the directory link like every ACME response."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:ietf:params:acme:error:{error}", body
    assert body["status"] == status, body
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert response.headers.get("replay-nonce"), response.headers
    links = response.headers.get_list("link")
    assert any(link.endswith('/directory>;rel="index"') for link in links), links
    return body
