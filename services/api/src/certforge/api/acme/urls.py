"""Absolute ACME URLs, built from the URL a request came in on.

ACME clients follow URLs the server hands them and sign the exact URL they post to (RFC 8555
§6.4), so the URLs must be the ones the client reached: the same api serves http on one port
and https on another (and sits behind proxies in a cluster). The base is therefore the
request's scheme and host, with `X-Forwarded-Proto`/`X-Forwarded-Host` honoured, unless the
`acme_base_url` setting pins it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from fastapi import Request

PREFIX = "/acme"


_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def request_base(request: Request, pinned: str) -> str:
    """`scheme://host[:port]` as the client sees it: a proxy's `X-Forwarded-Proto` and
    `X-Forwarded-Host` (first value, when well formed) win over what the api itself sees, and
    the ASGI `root_path` (an api mounted under a prefix) follows. A forged header only changes
    the URLs answered to the client that forged it, and its JWS must then name them too."""
    if pinned:
        return pinned.rstrip("/")
    scheme = request.url.scheme
    host = request.url.netloc
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        scheme = proto
    forwarded_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if forwarded_host and _HOST.match(forwarded_host):
        host = forwarded_host
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return f"{scheme}://{host}{root}"


def request_url(request: Request, pinned: str) -> str:
    """The absolute URL of this request, as the JWS `url` header must name it."""
    query = f"?{request.url.query}" if request.url.query else ""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    path = request.url.path
    if root and path.startswith(root):
        path = path[len(root) :]
    return f"{request_base(request, pinned)}{path}{query}"


@dataclass(frozen=True)
class AcmeUrls:
    """Every URL of one directory (`/acme/{application}/{profile}`)."""

    root: str

    @classmethod
    def of(cls, request: Request, pinned: str, application: str, profile: str) -> AcmeUrls:
        return cls(f"{request_base(request, pinned)}{PREFIX}/{application}/{profile}")

    @property
    def directory(self) -> str:
        return f"{self.root}/directory"

    @property
    def new_nonce(self) -> str:
        return f"{self.root}/new-nonce"

    @property
    def new_account(self) -> str:
        return f"{self.root}/new-account"

    @property
    def new_order(self) -> str:
        return f"{self.root}/new-order"

    @property
    def revoke_cert(self) -> str:
        return f"{self.root}/revoke-cert"

    @property
    def key_change(self) -> str:
        return f"{self.root}/key-change"

    @property
    def renewal_info(self) -> str:
        return f"{self.root}/renewal-info"

    def account(self, account_id: UUID) -> str:
        return f"{self.root}/acct/{account_id}"

    def account_id(self, url: str) -> UUID | None:
        """The account a `kid` names, if it is an account URL of this directory."""
        prefix = f"{self.root}/acct/"
        if not url.startswith(prefix):
            return None
        try:
            return UUID(url.removeprefix(prefix))
        except ValueError:
            return None

    def orders(self, account_id: UUID) -> str:
        return f"{self.root}/acct/{account_id}/orders"

    def order(self, order_id: UUID) -> str:
        return f"{self.root}/order/{order_id}"

    def finalize(self, order_id: UUID) -> str:
        return f"{self.root}/order/{order_id}/finalize"

    def authorization(self, authz_id: UUID) -> str:
        return f"{self.root}/authz/{authz_id}"

    def challenge(self, challenge_id: UUID) -> str:
        return f"{self.root}/chall/{challenge_id}"

    def certificate(self, certificate_id: UUID, chain: int = 0) -> str:
        base = f"{self.root}/cert/{certificate_id}"
        return f"{base}/{chain}" if chain else base
