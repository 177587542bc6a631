from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from certforge.api.domain.jwt_login import ALLOWED_ALGORITHMS, check_jwks, pem_to_jwk
from certforge.api.schemas.common import SLUG_PATTERN, Name, Strict, examples
from certforge.common.domain import Role
from certforge.common.durations import Duration


class IdentityCreate(Strict):
    model_config = examples({"name": "ci-bot", "token_ttl": "90d"})

    name: Name
    product_admin: bool = Field(default=False, description="grant the global product-admin role")
    token_ttl: Duration | None = Field(default=None, description="token expiry, e.g. 90d; none")


class TokenCreate(Strict):
    model_config = examples({"ttl": "90d"})

    ttl: Duration | None = Field(default=None, description="token expiry, e.g. 90d; none = never")


class TokenPublic(BaseModel):
    id: UUID
    prefix: str
    kind: str = Field(description="static (made by an admin) or access (minted by a login)")
    auth_method_id: UUID | None = Field(description="the auth method that minted it")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewToken(BaseModel):
    id: UUID
    token: str = Field(description="shown once; only its SHA-256 is stored")
    expires_at: datetime | None


class MembershipPublic(BaseModel):
    application_id: UUID
    application: str
    role: Role


class IdentityPublic(BaseModel):
    id: UUID
    name: str
    product_admin: bool
    created_at: datetime
    disabled_at: datetime | None


class IdentityCreated(IdentityPublic):
    token: str = Field(description="shown once; only its SHA-256 is stored")
    token_id: UUID


class IdentityDetail(IdentityPublic):
    tokens: list[TokenPublic]
    memberships: list[MembershipPublic]


# --- auth methods (JWT login) and access tokens ------------------------------------------

_GITHUB_EXAMPLE: dict[str, Any] = {
    "name": "github-deploy",
    "kind": "jwt",
    "jwt": {
        "issuer": "https://token.actions.githubusercontent.com",
        "audience": "https://certforge.example.com",
        "bound_claims": {
            "repository": "acme/shop",
            "ref": ["refs/heads/main", "refs/tags/v*"],
        },
        "token_ttl": "15m",
    },
}


def _issuer_url(value: str) -> str:
    """https, or http on a loopback host (a local issuer in development and tests): the JWKS
    fetched from it decides who may log in, so it must not travel in clear over a network."""
    parsed = urlsplit(value)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ValueError("must be an absolute https:// URL")
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("must use https:// (http only for a loopback issuer)")
    if parsed.query or parsed.fragment:
        raise ValueError("must not have a query or fragment")
    return value


def _jwks(value: dict[str, Any]) -> dict[str, Any]:
    check_jwks(value)
    return value


def _pems(value: list[str]) -> list[str]:
    for i, pem in enumerate(value):
        try:
            pem_to_jwk(pem)
        except ValueError as exc:
            raise ValueError(f"[{i}]: {exc}") from None
    return value


def _algorithms(value: list[str]) -> list[str]:
    bad = [a for a in value if a not in ALLOWED_ALGORITHMS]
    if bad:
        raise ValueError(f"{bad[0]!r} is not allowed; use some of {', '.join(ALLOWED_ALGORITHMS)}")
    if not value:
        raise ValueError("must name at least one algorithm")
    return value


def _bound_claims(value: dict[str, str | list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for claim, patterns in value.items():
        if not claim or len(claim) > 64:
            raise ValueError(f"claim name {claim[:70]!r} must have 1 to 64 characters")
        listed = [patterns] if isinstance(patterns, str) else patterns
        if not listed or len(listed) > 50:
            raise ValueError(f"{claim}: give 1 to 50 values or patterns")
        if any(not p or len(p) > 512 for p in listed):
            raise ValueError(f"{claim}: each value or pattern has 1 to 512 characters")
        out[claim] = listed
    if len(out) > 32:
        raise ValueError("at most 32 bound claims")
    return out


_TTL_SCHEMA = {
    "type": "string",
    "pattern": "^(?:(?:[1-9]|1[0-9]|2[0-4])h"
    "|(?:[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m)$",
    "description": "1m to 24h, e.g. 15m or 1h",
}
"""`_ttl`'s bounds in the document: whole hours or whole minutes up to 24h."""


def _ttl(value: timedelta) -> timedelta:
    if not timedelta(minutes=1) <= value <= timedelta(hours=24):
        raise ValueError("must be between 1m and 24h")
    return value


class JwtMethodConfig(Strict):
    """Who may log in: JWTs from `issuer` for `audience` whose claims match `bound_claims`."""

    issuer: Annotated[str, StringConstraints(max_length=512), AfterValidator(_issuer_url)] = Field(
        description="the `iss` every token must carry; without `jwks` or `public_keys`, also "
        "where the keys are found (OIDC discovery: <issuer>/.well-known/openid-configuration)",
        examples=["https://token.actions.githubusercontent.com"],
    )
    audience: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        description="the `aud` every token must contain", examples=["https://certforge.example"]
    )
    jwks: Annotated[dict[str, Any] | None, AfterValidator(lambda v: v and _jwks(v))] = Field(
        default=None,
        description="static JWKS (public keys) instead of discovery, e.g. a Kubernetes "
        "cluster's `kubectl get --raw /openid/v1/jwks`",
    )
    public_keys: Annotated[
        list[str] | None, Field(max_length=20), AfterValidator(lambda v: v and _pems(v))
    ] = Field(default=None, description="static PEM public keys instead of discovery")
    bound_claims: Annotated[dict[str, str | list[str]], AfterValidator(_bound_claims)] = Field(
        default_factory=dict,
        description="claim name → a value or list of values; glob patterns (`*`, `?`, `[…]`) "
        "allowed; every named claim must match one of its values",
        examples=[{"repository": "acme/shop", "ref": "refs/heads/main"}],
    )
    algorithms: Annotated[list[str], AfterValidator(_algorithms)] = Field(
        default_factory=lambda: list(ALLOWED_ALGORITHMS),
        min_length=1,
        json_schema_extra={"items": {"type": "string", "enum": list(ALLOWED_ALGORITHMS)}},
        description="accepted signature algorithms (asymmetric only; never none or HS*)",
    )
    token_ttl: Annotated[Duration, AfterValidator(_ttl), WithJsonSchema(_TTL_SCHEMA)] = Field(
        default=timedelta(minutes=15),
        description="lifetime of the minted access token",
        json_schema_extra={"default": "15m"},
    )
    allow_beyond_jwt_expiry: bool = Field(
        default=False, description="let the access token outlive the JWT it was minted from"
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if self.jwks is not None and self.public_keys is not None:
            raise ValueError("give `jwks` or `public_keys`, not both (or neither, for discovery)")
        return self


class AuthMethodCreate(Strict):
    model_config = examples(_GITHUB_EXAMPLE)

    name: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=63)] = Field(
        examples=["github-deploy"]
    )
    kind: Literal["jwt"] = "jwt"
    jwt: JwtMethodConfig


class AuthMethodPublic(BaseModel):
    id: UUID
    identity_id: UUID
    name: str
    kind: str
    jwt: JwtMethodConfig
    created_at: datetime
    updated_at: datetime


class LoginRequest(Strict):
    model_config = examples(
        {"method": "jwt", "identity": "ci-shop", "jwt": "eyJhbGciOiJSUzI1NiIsImtpZCI6..."}
    )

    method: Literal["jwt"]
    identity: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="the identity's name or id"
    )
    jwt: Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)] = Field(
        description="the workload's JWT (GitHub Actions OIDC token, service-account token, …)"
    )


class LoginResult(BaseModel):
    access_token: str = Field(description="a bearer token like any other; only its hash is kept")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name
    token_id: UUID
    expires_at: datetime
    expires_in: int = Field(description="seconds until expires_at")
    identity_id: UUID


def _glob_pattern(value: str | None) -> str | None:
    if value is not None and (not value.strip() or any(ord(c) < 0x20 for c in value)):
        raise ValueError("must be a non-empty pattern without control characters")
    return value


class CertificateBindingCreate(Strict):
    """Certificates of `profile` whose common name and/or a SAN match authenticate the identity
    over mTLS (behind a trusted proxy); at least one pattern."""

    model_config = examples(
        {"name": "shop-workers", "profile": "web-server", "san": "*.shop.svc.cluster.local"}
    )

    name: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=63)]
    profile: Annotated[str, StringConstraints(min_length=1, max_length=63)] = Field(
        description="slug or id of the profile the certificates were issued under"
    )
    common_name: Annotated[
        str | None, StringConstraints(max_length=255), AfterValidator(_glob_pattern)
    ] = Field(default=None, description="glob pattern on the certificate's common name")
    san: Annotated[str | None, StringConstraints(max_length=255), AfterValidator(_glob_pattern)] = (
        Field(default=None, description="glob pattern one of the certificate's SANs must match")
    )

    @model_validator(mode="after")
    def _some_pattern(self) -> Self:
        if self.common_name is None and self.san is None:
            raise ValueError("give `common_name`, `san` or both: a whole profile is too wide")
        return self


class CertificateBindingPublic(BaseModel):
    id: UUID
    identity_id: UUID
    name: str
    profile_id: UUID
    common_name: str | None
    san: str | None
    created_at: datetime
