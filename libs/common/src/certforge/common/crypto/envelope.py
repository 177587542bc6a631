"""AES-256-GCM envelope encryption of secrets at rest under key-encryption keys (KEKs).

Private keys and credentials are stored only as envelopes. The settings hold a key ring
`kid:base64(32 bytes)[,kid2:base64…]`: the first key encrypts, every key decrypts, so rotation is
"prepend a new key, re-wrap at leisure, drop the old one".

Envelope layout (all lengths in bytes)::

    version(1)=0x01 | kid_len(1) | kid(kid_len, ASCII) | nonce(12) | ciphertext+tag(16)

The header (version, kid) is authenticated together with the caller's AAD, and the AAD names
the row the secret belongs to (e.g. ``b"ca:<id>"``), so an envelope copied onto another row, or
relabelled with another kid, fails to decrypt instead of yielding a valid secret in the wrong
place. Nonces are always random and never chosen by the caller: a repeated GCM nonce under one
key leaks the authentication key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
NONCE_LEN = 12
KEY_LEN = 32
TAG_LEN = 16
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class EnvelopeError(Exception):
    """An envelope could not be opened; names the kid, never the data or the key."""

    def __init__(self, message: str, kid: str | None = None) -> None:
        super().__init__(message)
        self.kid = kid


class UnknownKeyIdError(EnvelopeError):
    """The envelope was sealed under a kid that is not (any more) in the key ring."""


class DecryptionFailedError(EnvelopeError):
    """Tag check failed: wrong key material, wrong AAD (another row) or a tampered envelope."""


class MalformedEnvelopeError(EnvelopeError):
    """The bytes are not an envelope of a version this code reads."""


class KeyRing:
    """An ordered set of AES-256 KEKs; the first one (`active_kid`) encrypts."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        ring: dict[str, bytes] = {}
        for kid, key in keys:
            if not _KID.match(kid):
                raise ValueError("key id must be 1-64 characters of A-Z a-z 0-9 . _ -")
            if kid in ring:
                raise ValueError(f"duplicate key id {kid!r}")
            if len(key) != KEY_LEN:
                raise ValueError(
                    f"key {kid!r} must be {KEY_LEN} bytes (AES-256), got {len(key)} bytes"
                )
            ring[kid] = bytes(key)
        if not ring:
            raise ValueError("the key ring needs at least one key")
        self._keys = ring

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """A ring from the settings format `kid:base64[,kid:base64…]`.

        Whitespace around entries is ignored. Errors name the entry's position and kid but never
        the key text, since the message may end up in a start-up log.
        """
        entries: list[tuple[str, bytes]] = []
        for position, raw in enumerate(text.split(","), start=1):
            entry = raw.strip()
            if not entry:
                raise ValueError(f"key ring entry {position} is empty")
            kid, sep, encoded = entry.partition(":")
            kid = kid.strip()
            if not sep or not kid:
                raise ValueError(f"key ring entry {position} must look like 'kid:base64key'")
            if not _KID.match(kid):
                raise ValueError(
                    f"key ring entry {position}: key id must be 1-64 characters of "
                    "A-Z a-z 0-9 . _ -"
                )
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(
                    f"key ring entry {position} ({kid!r}) is not valid base64"
                ) from None
            entries.append((kid, key))
        return cls(entries)

    @staticmethod
    def generate_text(kid: str, rng: Callable[[int], bytes] = secrets.token_bytes) -> str:
        """A fresh `kid:base64` entry, for development mode and for operators rotating keys."""
        if not _KID.match(kid):
            raise ValueError("key id must be 1-64 characters of A-Z a-z 0-9 . _ -")
        return f"{kid}:{base64.b64encode(rng(KEY_LEN)).decode('ascii')}"

    @property
    def active_kid(self) -> str:
        """The kid new envelopes are sealed under."""
        return next(iter(self._keys))

    @property
    def kids(self) -> tuple[str, ...]:
        """Every kid that can open envelopes, the active one first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(kids={list(self._keys)!r})"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal `plaintext` under the active key, bound to `aad` (the owning row)."""
        kid = self.active_kid
        header = _header(kid)
        nonce = os.urandom(NONCE_LEN)
        sealed = AESGCM(self._keys[kid]).encrypt(nonce, plaintext, header + aad)
        return header + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """Open an envelope with the key its kid names; raises an `EnvelopeError` subclass."""
        kid, header, nonce, sealed = _split(blob)
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyIdError(f"envelope key id {kid!r} is not in the key ring", kid)
        try:
            return AESGCM(key).decrypt(nonce, sealed, header + aad)
        except InvalidTag:
            raise DecryptionFailedError(
                f"envelope under key id {kid!r} does not authenticate "
                "(wrong key, wrong owner, or tampered)",
                kid,
            ) from None

    def needs_rewrap(self, blob: bytes) -> bool:
        """Whether `blob` is sealed under an older kid and should be re-encrypted after rotation."""
        return kid_of(blob) != self.active_kid

    def rewrap(self, blob: bytes, aad: bytes) -> bytes:
        """`blob` re-sealed under the active key (same AAD), for rotating KEKs."""
        return self.encrypt(self.decrypt(blob, aad), aad)


def kid_of(blob: bytes) -> str:
    """The kid an envelope was sealed under, without opening it."""
    return _split(blob)[0]


def _header(kid: str) -> bytes:
    encoded = kid.encode("ascii")
    return bytes([VERSION, len(encoded)]) + encoded


def _split(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    if len(blob) < 2 or blob[0] != VERSION:
        raise MalformedEnvelopeError("not a version-1 envelope")
    kid_len = blob[1]
    body = 2 + kid_len
    if kid_len == 0 or len(blob) < body + NONCE_LEN + TAG_LEN:
        raise MalformedEnvelopeError("envelope is truncated")
    try:
        kid = blob[2:body].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedEnvelopeError("envelope key id is not ASCII") from None
    if not _KID.match(kid):
        raise MalformedEnvelopeError("envelope key id is malformed")
    return kid, blob[:body], blob[body : body + NONCE_LEN], blob[body + NONCE_LEN :]
