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

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")
