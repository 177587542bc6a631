"""Settings of the REST gateway (`CERTFORGE_…`)."""

from __future__ import annotations

import ssl
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from certforge.common.settings import LeafKeySettings


class ApiSettings(LeafKeySettings):
    api_host: str = Field(default="127.0.0.1", description="interface to listen on")
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    public_url: str = Field(
        default="",
        description="Base URL clients reach the API at (https in production); defaults to "
        "http://<host>:<port>. Certificates point relying parties at CERTFORGE_REVOCATION_URL "
        "(issuer) instead.",
    )
    bootstrap_token: SecretStr | None = Field(
        default=None,
        description="On first start, when no product admin exists, this token becomes the first "
        "product admin's token.",
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="larger bodies get 413")
    sync_ambient_credentials: bool = Field(
        default=False,
        description="let syncs act with the syncer's own cloud identity (AWS default chain, "
        "in-cluster service account, Azure managed identity) instead of their own credentials",
    )
    issuer_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    access_cache_seconds: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="Each replica keeps what a token grants and what a profile issues for at "
        "most this long; a change (token revoked, role, profile, enrollment…) drops it on every "
        "replica within a second through the configuration.changed event. 0 = no cache.",
    )
    ocsp_response_validity_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description="OCSP responses are valid this long (nextUpdate - thisUpdate); GET responses "
        "may be cached by relying parties and proxies until nextUpdate, so a revocation can take "
        "this long to be seen by them.",
    )
    ocsp_memory_entries: int = Field(
        default=100_000,
        ge=0,
        description="pre-signed OCSP answers each api replica keeps in memory (about 1 KB each; "
        "the oldest are dropped first, then loaded from PostgreSQL when asked again)",
    )
    ocsp_replica_lease_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="an api replica serves OCSP answers from memory only while it has heard its "
        "own heartbeat on NATS this recently; a revocation waits at most about this long for a "
        "replica that does not confirm it forgot the old answer",
    )
    crl_recheck_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="a CRL served from memory is checked against PostgreSQL for a newer one at "
        "most this often (one small query per CA and replica)",
    )

    # --- TLS: the api serving HTTPS itself (make run's ACME directory, or a cluster without a
    # TLS-terminating ingress); both files or neither
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM file with the server certificate (then its chain): with "
        "CERTFORGE_TLS_KEY_FILE the api serves HTTPS instead of HTTP on its port. Unset when an "
        "ingress or proxy terminates TLS in front of it.",
    )
    tls_key_file: Path | None = Field(
        default=None,
        description="PEM file with the private key of CERTFORGE_TLS_CERT_FILE (unencrypted; "
        "keep it 0600 or in a mounted Secret)",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        """Both files or neither, and a pair that loads: a typo must stop the api at start-up,
        not leave it serving plain HTTP on a port clients expect to be HTTPS. The messages name
        the variables, never the key's content."""
        cert, key = self.tls_cert_file, self.tls_key_file
        if (cert is None) != (key is None):
            raise ValueError(
                "CERTFORGE_TLS_CERT_FILE and CERTFORGE_TLS_KEY_FILE must be set together "
                "(or neither, for plain HTTP)"
            )
        if cert is not None and key is not None:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
            except ssl.SSLError as exc:  # before OSError, its base class
                raise ValueError(
                    "CERTFORGE_TLS_CERT_FILE / CERTFORGE_TLS_KEY_FILE cannot be used: "
                    f"{exc.reason or 'not PEM'} (need a PEM certificate and its unencrypted PEM "
                    "private key)"
                ) from None
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise ValueError(
                    "CERTFORGE_TLS_CERT_FILE / CERTFORGE_TLS_KEY_FILE cannot be used: "
                    f"{reason} (need a PEM certificate and its unencrypted PEM private key)"
                ) from None
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    # --- ACME (RFC 8555) -------------------------------------------------------------------
    acme_base_url: str = Field(
        default="",
        description="Base URL of the ACME endpoints (scheme://host[:port]); empty = the URL each "
        "request came in on (honouring X-Forwarded-Proto/Host), so one api serves ACME over http "
        "on one port and https on another.",
    )
    acme_nonce_lifetime_seconds: int = Field(
        default=3600, ge=10, le=86400, description="an unused Replay-Nonce is refused after this"
    )
    acme_order_lifetime_seconds: int = Field(
        default=7 * 86400,
        ge=60,
        le=30 * 86400,
        description="a pending or ready ACME order, and its authorizations, expire after this",
    )
    acme_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="larger ACME request bodies are refused (malformed, 413)",
    )
    acme_retry_after_seconds: int = Field(
        default=1,
        ge=1,
        le=3600,
        description="Retry-After of an order being issued or a challenge being validated",
    )

    # --- machine identity: JWT login (POST /api/v1/auth/login) ----------------------------
    login_jwks_cache_seconds: int = Field(
        default=3600,
        ge=60,
        le=86400,
        description="an issuer's discovery document and JWKS are refetched after this long",
    )
    login_jwks_min_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="a JWT with an unknown `kid` refetches the issuer's JWKS at most this often, "
        "so forged tokens cannot make the api hammer the issuer",
    )
    login_jwt_leeway_seconds: int = Field(
        default=60, ge=0, le=300, description="clock skew allowed on exp, nbf and iat"
    )
    login_attempts_per_identity: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="login attempts per identity per minute (a token bucket shared by all api "
        "replicas; over it: 429 with Retry-After)",
    )
    login_attempts_per_source: int = Field(
        default=120,
        ge=1,
        le=100_000,
        description="login attempts per source address per minute (shared by all replicas)",
    )
    issuance_requests_per_identity: int = Field(
        default=600,
        ge=0,
        le=1_000_000,
        description="certificate requests and renewals per identity per minute, in bursts of as "
        "many (a token bucket shared by all api replicas; over it: 429 with Retry-After); "
        "0: no limit",
    )

    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks of the proxies / ingresses that "
        "terminate TLS in front of the api and pass the client certificate in "
        "CERTFORGE_CLIENT_CERT_HEADER; the header is ignored from anyone else. Empty: never.",
    )
    client_cert_header: str = Field(
        default="x-forwarded-client-cert",
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="Header carrying the verified client certificate: URL-encoded PEM "
        "(nginx `$ssl_client_escaped_cert`, e.g. `ssl-client-cert`) or Envoy's XFCC "
        '(`…;Cert="<URL-encoded PEM>"`)',
    )

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(
            ip_network(p.strip(), strict=False)
            for p in self.trusted_proxies.split(",")
            if p.strip()
        )

    @model_validator(mode="after")
    def _proxies(self) -> Self:
        try:
            self.trusted_proxy_networks  # noqa: B018 - parsed to fail at start-up
        except ValueError as exc:
            raise ValueError(f"CERTFORGE_TRUSTED_PROXIES: {exc}") from None
        return self

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_enabled else "http"
        return (self.public_url or f"{scheme}://{self.api_host}:{self.api_port}").rstrip("/")

    # --- the web console (/ui) -------------------------------------------------------------
    ui_session_minutes: int = Field(
        default=480,
        ge=5,
        le=7 * 24 * 60,
        description="a console sign-in lasts this long (never longer than the token it was "
        "made from); then the person signs in again and comes back to the page they were on",
    )
    ui_secure_cookies: bool | None = Field(
        default=None,
        description="mark the console's cookies Secure (sent over HTTPS only); unset: Secure "
        "everywhere except CERTFORGE_ENVIRONMENT=development",
    )
    ui_request_wait_seconds: int = Field(
        default=10,
        ge=0,
        le=60,
        description="how long the console's Request dialog waits for the certificate before "
        "showing the pending request, which then refreshes itself",
    )

    @property
    def ui_cookies_secure(self) -> bool:
        return not self.is_development if self.ui_secure_cookies is None else self.ui_secure_cookies
