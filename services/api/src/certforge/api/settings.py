"""Settings of the REST gateway (`CERTFORGE_…`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from certforge.common.settings import LeafKeySettings


class ApiSettings(LeafKeySettings):
    api_host: str = Field(default="127.0.0.1", description="interface to listen on")
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    public_url: str = Field(
        default="",
        description="Base URL clients reach the API at; defaults to http://<host>:<port>. "
        "Used in Location headers and in CRL/OCSP/AIA URLs.",
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
    ocsp_response_validity_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description="OCSP responses are valid this long (nextUpdate - thisUpdate); GET responses "
        "may be cached by relying parties and proxies until nextUpdate, so a revocation can take "
        "this long to be seen by them.",
    )

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

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")
