"""OCSP (RFC 6960) answers signed by a CA's delegated responder. Pure: no database, no clock.

The issuer keeps CA keys; for each CA it issues a short-lived responder certificate
(id-kp-OCSPSigning, ocsp-nocheck) whose key the api may decrypt, so answers are signed here:
ahead of time for plain requests (kept in memory, `revocation_memory.py`), per request for a
nonce or a CertID hashed otherwise than with SHA-1. `domain/ocsp.py` finds the facts; this
module parses requests and builds responses.

`cryptography` parses a request with one single request only and builds a response with one
single response only, so a request for several certificates is answered `malformedRequest`
(openssl, browsers and Go ask for one certificate per request). A CertID hashed with an
algorithm `cryptography` cannot compute is answered `malformedRequest` too: its CertID could
not be echoed in an `unknown` answer.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote
from uuid import UUID

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from certforge.common.crypto.keys import PrivateKey, hash_algorithm, key_algorithm_of
from certforge.common.crypto.revocation import REASON_FLAGS
from certforge.common.domain import RevocationReason

MAX_NONCE_BYTES = 128  # RFC 9654 §2.1: longer (or empty) nonces are malformedRequest
Status = ocsp.OCSPResponseStatus


@dataclass(frozen=True)
class CertId:
    """One parsed request: what the client names, and the nonce to echo."""

    algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    nonce: bytes | None


@dataclass(frozen=True)
class Revocation:
    revoked_at: datetime
    reason: RevocationReason


@dataclass(frozen=True)
class Good:
    pass


GOOD = Good()
CertStatus = Good | Revocation | None
"""`Good`, a `Revocation`, or `None` for unknown."""


@dataclass(frozen=True)
class Responder:
    """A CA's delegated OCSP signer, decrypted."""

    id: UUID
    certificate: x509.Certificate
    key: PrivateKey
    not_after: datetime


@dataclass
class Issuer:
    """A CA as requests name it: the hashes of its name and key, per hash algorithm."""

    certificate: x509.Certificate
    _hashes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    def named_by(self, cert_id: CertId) -> bool:
        return self._of(cert_id.algorithm) == (cert_id.issuer_name_hash, cert_id.issuer_key_hash)

    def cert_id(self, serial_number: int) -> CertId:
        """The SHA-1 CertID of one of this CA's serials, without nonce: how pre-signed answers
        name their certificate (what openssl, browsers and RFC 5019 clients send)."""
        sha1 = hashes.SHA1()  # noqa: S303 - RFC 5019 §2.1.1: CertIDs use SHA-1
        name_hash, key_hash = self._of(sha1)
        return CertId(sha1, name_hash, key_hash, serial_number, None)

    def _of(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        name = algorithm.name
        if name not in self._hashes:
            self._hashes[name] = (
                _digest(algorithm, self.certificate.subject.public_bytes()),
                _digest(algorithm, subject_public_key(self.certificate)),
            )
        return self._hashes[name]


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def subject_public_key(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bits: what RFC 6960 §4.1.1 issuerKeyHash covers
    ("excluding the tag and length fields"), read from the DER SubjectPublicKeyInfo."""
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _, start, _ = _tlv(spki, 0)  # SEQUENCE { algorithm, subjectPublicKey }
    _, _, after_algorithm = _tlv(spki, start)
    tag, bits, end = _tlv(spki, after_algorithm)
    if tag != 0x03 or spki[bits] != 0:
        raise ValueError("subjectPublicKey is not a BIT STRING of whole bytes")
    return spki[bits + 1 : end]


def _tlv(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `offset`."""
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[start : start + size], "big")
        start += size
    return tag, start, start + length


def is_plain(cert_id: CertId) -> bool:
    """A SHA-1 CertID without nonce: answered with the pre-signed bytes; anything else is
    signed for the request (a nonce must be echoed, a CertID in its own hash)."""
    return cert_id.nonce is None and isinstance(cert_id.algorithm, hashes.SHA1)


@dataclass
class OcspCache:
    """Per-process memory of decrypted responders and CA certificates, keyed by CA id.

    A CA certificate never changes; a responder is replaced when the database names another
    one as the CA's current responder (it expired or the issuer made a newer one).
    """

    issuers: dict[UUID, Issuer] = field(default_factory=dict)
    responders: dict[UUID, Responder] = field(default_factory=dict)
    requests: dict[tuple[str, bytes], tuple[UUID, int]] = field(default_factory=dict)
    """Plain requests already parsed and matched to their CA: (CA ref, DER) -> (CA id,
    serial). Relying parties send the same bytes again and again; parsing costs more than the
    lookup it leads to. Bounded by `max_requests`, oldest dropped first."""
    max_requests: int = 10_000

    def remember_request(self, ca_ref: str, der: bytes, key: tuple[UUID, int]) -> None:
        if len(self.requests) >= self.max_requests:
            self.requests.pop(next(iter(self.requests)))
        self.requests[(ca_ref, der)] = key


def decode_get(encoded: str) -> bytes | None:
    """The DER request of a GET URL (RFC 6960 appendix A.1: URL-encoded base64)."""
    text = unquote(encoded).strip().replace(" ", "+")  # a '+' may arrive form-decoded
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_request(der: bytes) -> CertId | None:
    """The single request of `der`, or `None` if the request is malformed or unsupported."""
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm
        nonce: bytes | None = None
        with contextlib.suppress(x509.ExtensionNotFound):
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        cert_id = CertId(
            algorithm=algorithm,
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            nonce=nonce,
        )
    except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
        return None
    if nonce is not None and not 0 < len(nonce) <= MAX_NONCE_BYTES:
        return None
    return cert_id


def unsuccessful(status: Status) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def build_response(
    cert_id: CertId,
    status: CertStatus,
    responder: Responder,
    now: datetime,
    validity: timedelta,
) -> bytes:
    """A signed `successful` response about `cert_id`, valid from `now` for `validity`."""
    this_update = now.replace(microsecond=0)
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None
    if isinstance(status, Revocation):
        cert_status = ocsp.OCSPCertStatus.REVOKED
        revoked_at = status.revoked_at.replace(microsecond=0)
        if status.reason is not RevocationReason.UNSPECIFIED:  # RFC 5280 §5.3.1: omit it
            reason = REASON_FLAGS[status.reason]
    elif status is None:
        cert_status = ocsp.OCSPCertStatus.UNKNOWN
    else:
        cert_status = ocsp.OCSPCertStatus.GOOD
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=cert_id.issuer_name_hash,
            issuer_key_hash=cert_id.issuer_key_hash,
            serial_number=cert_id.serial_number,
            algorithm=cert_id.algorithm,
            cert_status=cert_status,
            this_update=this_update,
            next_update=this_update + validity,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
        .certificates([responder.certificate])
    )
    if cert_id.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(cert_id.nonce), critical=False)
    signing_hash = hash_algorithm(None, key_algorithm_of(responder.key))
    return builder.sign(responder.key, signing_hash).public_bytes(Encoding.DER)
