"""ACME (RFC 8555, 8737, 8738, 9773) facts that the api and the validator must agree on.

Pure values and functions only: the challenge types and which identifiers each may prove, the
key authorization and what each challenge type derives from it, the ACME error types, and the
ARI certificate identifier. The protocol itself (JWS, nonces, resources) is the api's; the
network checks are the validator's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509

ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
"""id-pe-acmeIdentifier (RFC 8737 §6.1): the critical extension of a tls-alpn-01 certificate."""

ALPN_PROTOCOL = "acme-tls/1"
HTTP01_PATH = "/.well-known/acme-challenge/"
DNS01_LABEL = "_acme-challenge"


class ChallengeType(StrEnum):
    HTTP_01 = "http-01"
    DNS_01 = "dns-01"
    TLS_ALPN_01 = "tls-alpn-01"


ALL_CHALLENGE_TYPES: tuple[ChallengeType, ...] = tuple(ChallengeType)


class IdentifierType(StrEnum):
    DNS = "dns"
    IP = "ip"


class Status(StrEnum):
    """Every status an ACME object can have (RFC 8555 §7.1.6); each object uses a subset."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ErrorType(StrEnum):
    """`urn:ietf:params:acme:error:<name>` (RFC 8555 §6.7, RFC 9773 §7.4)."""

    ACCOUNT_DOES_NOT_EXIST = "accountDoesNotExist"
    ALREADY_REPLACED = "alreadyReplaced"
    ALREADY_REVOKED = "alreadyRevoked"
    BAD_CSR = "badCSR"
    BAD_NONCE = "badNonce"
    BAD_PUBLIC_KEY = "badPublicKey"
    BAD_REVOCATION_REASON = "badRevocationReason"
    BAD_SIGNATURE_ALGORITHM = "badSignatureAlgorithm"
    CAA = "caa"
    COMPOUND = "compound"
    CONNECTION = "connection"
    DNS = "dns"
    EXTERNAL_ACCOUNT_REQUIRED = "externalAccountRequired"
    INCORRECT_RESPONSE = "incorrectResponse"
    INVALID_CONTACT = "invalidContact"
    MALFORMED = "malformed"
    ORDER_NOT_READY = "orderNotReady"
    RATE_LIMITED = "rateLimited"
    REJECTED_IDENTIFIER = "rejectedIdentifier"
    SERVER_INTERNAL = "serverInternal"
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED_CONTACT = "unsupportedContact"
    UNSUPPORTED_IDENTIFIER = "unsupportedIdentifier"
    USER_ACTION_REQUIRED = "userActionRequired"

    @property
    def urn(self) -> str:
        return f"urn:ietf:params:acme:error:{self.value}"


def problem(
    error: ErrorType,
    detail: str,
    *,
    status: int = 400,
    identifier: dict[str, str] | None = None,
    subproblems: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ACME problem document as stored on a challenge or order and sent to the client."""
    document: dict[str, Any] = {"type": error.urn, "detail": detail, "status": status}
    if identifier is not None:
        document["identifier"] = identifier
    if subproblems:
        document["subproblems"] = subproblems
    return document


def challenge_types_for(
    identifier_type: IdentifierType, wildcard: bool, allowed: list[str] | tuple[str, ...]
) -> list[ChallengeType]:
    """The challenges offered for one identifier: only dns-01 can prove a wildcard (RFC 8555
    §7.1.3); dns-01 cannot prove an IP address (RFC 8738 §7). Order follows `allowed`."""
    offered = []
    for name in allowed:
        kind = ChallengeType(name)
        if wildcard and kind is not ChallengeType.DNS_01:
            continue
        if identifier_type is IdentifierType.IP and kind is ChallengeType.DNS_01:
            continue
        offered.append(kind)
    return offered


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 8555 §6.1): raises ValueError on anything else."""
    if "=" in text or not text.isascii():
        raise ValueError("base64url must be unpadded ASCII")
    try:
        return base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except binascii.Error as exc:
        raise ValueError(f"not base64url: {exc}") from None


def key_authorization(token: str, thumbprint: str) -> str:
    """`token || '.' || base64url(JWK thumbprint)` (RFC 8555 §8.1)."""
    return f"{token}.{thumbprint}"


def dns01_txt_value(key_authz: str) -> str:
    """The `_acme-challenge` TXT record value: base64url(SHA-256(key authorization))."""
    return b64url(hashlib.sha256(key_authz.encode("ascii")).digest())


def tls_alpn01_digest(key_authz: str) -> bytes:
    """The SHA-256 the acmeIdentifier extension must carry (RFC 8737 §3)."""
    return hashlib.sha256(key_authz.encode("ascii")).digest()


@dataclass(frozen=True)
class AriCertId:
    """RFC 9773 §4.1: base64url(authorityKeyIdentifier) '.' base64url(serial DER bytes)."""

    key_identifier: bytes
    serial_number: int

    def __str__(self) -> str:
        return f"{b64url(self.key_identifier)}.{b64url(_serial_bytes(self.serial_number))}"

    @classmethod
    def parse(cls, text: str) -> AriCertId:
        aki, dot, serial = text.partition(".")
        if not dot or not aki or not serial:
            raise ValueError("an ARI certificate identifier is `<keyIdentifier>.<serial>`")
        raw_serial = b64url_decode(serial)
        if raw_serial[0] & 0x80:
            raise ValueError("the serial number must be a positive DER INTEGER")
        return cls(b64url_decode(aki), int.from_bytes(raw_serial, "big"))

    @classmethod
    def of(cls, certificate: x509.Certificate) -> AriCertId:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        if aki.key_identifier is None:
            raise ValueError("the certificate's authorityKeyIdentifier has no keyIdentifier")
        return cls(aki.key_identifier, certificate.serial_number)


def _serial_bytes(serial: int) -> bytes:
    """The DER INTEGER content octets: big-endian, with a leading 0x00 when the top bit is set."""
    length = serial.bit_length() // 8 + 1
    return serial.to_bytes(length, "big")


def eab_key_aad(key_id: str) -> bytes:
    """The AAD an EAB HMAC key is sealed with under the leaf key ring: a sealed key cannot be
    passed off as another key id's, nor as any other secret sealed under the same ring."""
    return b"acme-eab-key:" + key_id.encode("utf-8")


EARLY_RENEWAL_WINDOW = timedelta(hours=1)


def suggested_window(
    *,
    not_before: datetime,
    not_after: datetime,
    renew_before_days: int,
    early_renewal_at: datetime | None,
) -> tuple[datetime, datetime]:
    """ARI's suggested renewal window (RFC 9773 §4.2) for one certificate.

    Normally it opens `renew_before_days` before expiry (the enrollment's setting, as API
    certificates are renewed) and stays open for half of that, so clients spread their renewals
    and still have half the margin left for retries. A certificate whose lifetime is shorter
    than the margin opens at two thirds of its lifetime instead. When an admin asked for early
    renewal (of this certificate, or of everything its CA issued before a moment), the window
    opens at that moment and closes an hour later: a window in the past tells clients to renew
    now.
    """
    if early_renewal_at is not None:
        start = max(early_renewal_at, not_before)
        return start, min(start + EARLY_RENEWAL_WINDOW, not_after)
    margin = timedelta(days=renew_before_days)
    lifetime = not_after - not_before
    if margin >= lifetime:
        margin = lifetime / 3
    start = not_after - margin
    return start, start + margin / 2
