"""Envelope encryption: round trip, binding to the owning row, tamper evidence, key rotation."""

from __future__ import annotations

import base64

import pytest

from certforge.common.crypto.envelope import (
    DecryptionFailedError,
    EnvelopeError,
    KeyRing,
    MalformedEnvelopeError,
    UnknownKeyIdError,
    kid_of,
)

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()
SECRET = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"
AAD = b"ca:4f6c1f2e"


def test_round_trip_and_self_describing_layout() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    blob = ring.encrypt(SECRET, AAD)
    assert ring.decrypt(blob, AAD) == SECRET
    assert blob[0] == 1
    assert blob[1] == 2
    assert blob[2:4] == b"k1"
    assert len(blob) == 1 + 1 + 2 + 12 + len(SECRET) + 16
    assert kid_of(blob) == "k1"
    assert SECRET not in blob


def test_nonces_differ_between_encryptions() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    assert ring.encrypt(SECRET, AAD) != ring.encrypt(SECRET, AAD)


def test_empty_plaintext_round_trips() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    assert ring.decrypt(ring.encrypt(b"", AAD), AAD) == b""


def test_blob_copied_to_another_row_fails() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    blob = ring.encrypt(SECRET, b"ca:1")
    with pytest.raises(DecryptionFailedError) as caught:
        ring.decrypt(blob, b"ca:2")
    assert caught.value.kid == "k1"
    assert "k1" in str(caught.value)


@pytest.mark.parametrize(
    "position",
    [0, 1, 3, 5, 20, -1],
    ids=[
        "fail/version",
        "fail/kid-length",
        "fail/kid",
        "fail/nonce",
        "fail/ciphertext",
        "fail/tag",
    ],
)
def test_tampering_anywhere_fails(position: int) -> None:
    ring = KeyRing.parse(f"k1:{KEY_A},k2:{KEY_B}")
    blob = bytearray(ring.encrypt(SECRET, AAD))
    blob[position] ^= 0x01
    with pytest.raises(EnvelopeError) as caught:
        ring.decrypt(bytes(blob), AAD)
    assert b"secret" not in str(caught.value).encode()


def test_relabelling_with_another_known_kid_fails() -> None:
    ring = KeyRing.parse(f"ka:{KEY_A},kb:{KEY_B}")
    blob = ring.encrypt(SECRET, AAD)
    relabelled = blob[:2] + b"kb" + blob[4:]
    with pytest.raises(DecryptionFailedError, match="kb"):
        ring.decrypt(relabelled, AAD)


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x01", b"\x02\x02k1" + bytes(40), b"\x01\x02k1" + bytes(10), b"\x01\x00" + bytes(40)],
    ids=["fail/empty", "fail/header-only", "fail/version-2", "fail/truncated", "fail/no-kid"],
)
def test_malformed_envelopes(blob: bytes) -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    with pytest.raises(MalformedEnvelopeError):
        ring.decrypt(blob, AAD)


def test_rotation_old_kid_decrypts_new_kid_encrypts() -> None:
    old_ring = KeyRing.parse(f"2024:{KEY_A}")
    old_blob = old_ring.encrypt(SECRET, AAD)

    rotated = KeyRing.parse(f"2025:{KEY_B}, 2024:{KEY_A}")
    assert rotated.active_kid == "2025"
    assert rotated.kids == ("2025", "2024")
    assert rotated.decrypt(old_blob, AAD) == SECRET
    assert rotated.needs_rewrap(old_blob)

    new_blob = rotated.rewrap(old_blob, AAD)
    assert kid_of(new_blob) == "2025"
    assert not rotated.needs_rewrap(new_blob)
    assert rotated.decrypt(new_blob, AAD) == SECRET

    with pytest.raises(UnknownKeyIdError) as caught:
        old_ring.decrypt(new_blob, AAD)
    assert caught.value.kid == "2025"


def test_same_kid_with_other_key_material_fails_as_decryption() -> None:
    blob = KeyRing.parse(f"k1:{KEY_A}").encrypt(SECRET, AAD)
    with pytest.raises(DecryptionFailedError):
        KeyRing.parse(f"k1:{KEY_B}").decrypt(blob, AAD)


SHORT = base64.b64encode(b"x" * 16).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "entry 1 is empty"),
        (f"k1:{KEY_A},", "entry 2 is empty"),
        (KEY_A, "must look like"),
        (f":{KEY_A}", "must look like"),
        (f"k 1:{KEY_A}", "key id"),
        ("k1:not*base64!", "not valid base64"),
        (f"k1:{SHORT}", "32 bytes"),
        (f"k1:{KEY_A},k1:{KEY_B}", "duplicate"),
    ],
    ids=[
        "fail/empty",
        "fail/trailing-comma",
        "fail/no-kid",
        "fail/empty-kid",
        "fail/bad-kid",
        "fail/bad-base64",
        "fail/short-key",
        "fail/duplicate-kid",
    ],
)
def test_parse_errors_never_echo_key_material(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        KeyRing.parse(text)
    rendered = str(caught.value)
    for secret in (KEY_A, KEY_B, SHORT, "not*base64!"):
        assert secret not in rendered
    assert caught.value.__cause__ is None


def test_generate_text_parses_and_differs() -> None:
    first, second = KeyRing.generate_text("dev"), KeyRing.generate_text("dev")
    assert first != second
    ring = KeyRing.parse(first)
    assert ring.active_kid == "dev"
    assert ring.decrypt(ring.encrypt(SECRET, AAD), AAD) == SECRET


def test_generate_text_uses_the_given_randomness() -> None:
    text = KeyRing.generate_text("k", rng=lambda n: b"\x00" * n)
    assert text == "k:" + base64.b64encode(bytes(32)).decode()


def test_repr_shows_kids_only() -> None:
    ring = KeyRing.parse(f"k1:{KEY_A}")
    assert repr(ring) == "KeyRing(kids=['k1'])"
    assert KEY_A not in repr(ring)
