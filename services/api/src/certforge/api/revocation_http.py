"""HTTP for OCSP answers and CRLs: caching headers and conditional requests, in one place for
the FastAPI routes and the fast path in front of them (`fast_path.py`).

Successful OCSP answers and CRLs are `public, no-transform` with `max-age` up to their nextUpdate
(RFC 5019 §6.2; a CRL at most half its remaining life and an hour, since a revocation replaces
it early), an `ETag` (a hash of the bytes: the same on every replica), `Last-Modified`
(thisUpdate) and `Expires` (nextUpdate). A GET whose `If-None-Match` names the ETag, or whose
`If-Modified-Since` is not older than thisUpdate, gets `304 Not Modified` without a body
(RFC 9110 §13.1). POST answers carry the same headers but are never 304 (RFC 9110 allows it for
GET and HEAD only). Unsuccessful OCSP answers are `no-store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from certforge.api.revocation_memory import Prepared, ServedCrl

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
CRL_DER = "application/pkix-crl"
CRL_PEM = "application/x-pem-file"
CRL_MAX_AGE = 3600


@dataclass(frozen=True)
class Conditions:
    """The request's validators (`If-None-Match`, `If-Modified-Since`), as sent."""

    if_none_match: str | None = None
    if_modified_since: str | None = None

    def satisfied_by(self, etag: str, last_modified: datetime) -> bool:
        """True when the client's copy is current, so a 304 answers it."""
        if self.if_none_match is not None:  # takes precedence (RFC 9110 §13.2.2)
            tags = [t.strip().removeprefix("W/") for t in self.if_none_match.split(",")]
            return "*" in tags or etag in tags
        if self.if_modified_since is not None:
            try:
                since = parsedate_to_datetime(self.if_modified_since)
            except (TypeError, ValueError):
                return False
            return since.tzinfo is not None and last_modified.replace(microsecond=0) <= since
        return False


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def ocsp_reply(
    der: bytes,
    prepared: Prepared | None,
    now: datetime,
    max_age_limit: int,
    conditions: Conditions | None,
) -> Reply:
    """The HTTP answer for an OCSP response; `conditions` only for GET (None: no 304)."""
    if prepared is None:
        return Reply(200, {"content-type": OCSP_RESPONSE, "cache-control": "no-store"}, der)
    seconds = int((prepared.next_update - now).total_seconds())
    max_age = max(0, min(seconds, max_age_limit))
    last_modified, expires = prepared.http_dates
    headers = {
        "content-type": OCSP_RESPONSE,
        "cache-control": f"public, max-age={max_age}, no-transform, must-revalidate",
        "etag": prepared.etag,
        "last-modified": last_modified,
        "expires": expires,
    }
    if conditions is not None and conditions.satisfied_by(prepared.etag, prepared.this_update):
        del headers["content-type"]
        return Reply(304, headers, b"")
    return Reply(200, headers, der)


def crl_reply(served: ServedCrl, pem: bool, now: datetime, conditions: Conditions) -> Reply:
    seconds = int((served.next_update - now).total_seconds())
    last_modified, expires = served.http_dates
    headers = {
        "content-type": CRL_PEM if pem else CRL_DER,
        "cache-control": f"public, max-age={max(0, min(seconds // 2, CRL_MAX_AGE))}, no-transform",
        "etag": served.etag[:-1] + ('-pem"' if pem else '"'),
        "last-modified": last_modified,
        "expires": expires,
    }
    if conditions.satisfied_by(headers["etag"], served.this_update):
        del headers["content-type"]
        return Reply(304, headers, b"")
    return Reply(200, headers, served.pem if pem else served.der)
