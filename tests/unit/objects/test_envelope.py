"""CSS1 envelopes (objects.md §1.3, §7 items 2-3)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from caracal_api.kit.envelope import (
    DEK_AAD,
    MIN_LENGTH,
    EnvelopeTagMismatch,
    ForeignKek,
    KeyRing,
    UnknownEnvelopeFormat,
    WeakKeyError,
    _seal_with,
    check_kek,
    envelope_kek_id,
    kek_id,
)

KEK = bytes.fromhex("0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186")
DEK = bytes.fromhex("05121f2c394653606d7a8794a1aebbc8d5e2effc091623303d4a5764717e8b98")
OTHER = hashlib.sha256(b"another key").digest()
REF = "zones/z1/applications/a1/clientSecret"

# Known-answer vector: KEK/DEK above, dek_nonce 00..0b, val_nonce 64..6f, value "hello css1".
VECTOR = bytes.fromhex(
    "4353533183b7a8ed859053c8000102030405060708090a0b664ea5c7d21b02b441771a54f04e29f0e653"
    "05afd6f04e9dd079ffd7d1f601819e017b2f8080e44c23190f1a3f4f38b76465666768696a6b6c6d6e6f"
    "194ffd2df9c4db2ffa676753779663fadd05f4d09e0dea77c244"
)


def test_known_answer_vector() -> None:
    sealed = _seal_with(KEK, DEK, bytes(range(12)), bytes(range(100, 112)), b"hello css1", REF)
    assert sealed == VECTOR
    assert KeyRing(KEK).open(VECTOR, REF) == b"hello css1"


def test_vector_layout_matches_an_independent_construction() -> None:
    assert VECTOR[:4] == b"CSS1"
    assert VECTOR[4:12] == hashlib.sha256(KEK).digest()[:8] == kek_id(KEK)
    dek_nonce, dek_ct = VECTOR[12:24], VECTOR[24:72]
    val_nonce, val_ct = VECTOR[72:84], VECTOR[84:]
    assert ChaCha20Poly1305(KEK).decrypt(dek_nonce, dek_ct, b"caracal.css1.dek") == DEK
    assert ChaCha20Poly1305(DEK).decrypt(val_nonce, val_ct, REF.encode()) == b"hello css1"
    assert DEK_AAD == b"caracal.css1.dek"
    assert len(VECTOR) == 100 + len(b"hello css1")


@pytest.mark.parametrize(
    "value", [b"", b"x", b"cs_" + b"a" * 43, "日本語 🦊".encode(), b"\x00" * 5000]
)
def test_round_trip(value: bytes) -> None:
    ring = KeyRing(KEK)
    sealed = ring.seal(value, REF)
    assert len(sealed) == MIN_LENGTH + len(value)
    assert ring.open(sealed, REF) == value
    assert ring.is_current(sealed)


def test_each_seal_uses_fresh_randomness() -> None:
    ring = KeyRing(KEK)
    assert ring.seal(b"same", REF) != ring.seal(b"same", REF)


def test_moved_ref_does_not_open() -> None:
    ring = KeyRing(KEK)
    sealed = ring.seal(b"secret", REF)
    with pytest.raises(EnvelopeTagMismatch) as info:
        ring.open(sealed, "zones/z1/applications/a2/clientSecret")
    assert info.value.layer == "value"


@pytest.mark.parametrize("position", [0, 3, 4, 11, 12, 30, 75, 90, -1])
def test_tampered_bytes_fail(position: int) -> None:
    ring = KeyRing(KEK)
    sealed = bytearray(ring.seal(b"secret value", REF))
    sealed[position] ^= 0x01
    with pytest.raises((UnknownEnvelopeFormat, ForeignKek, EnvelopeTagMismatch)):
        ring.open(bytes(sealed), REF)


def test_tampered_dek_layer_is_reported_as_key_layer() -> None:
    sealed = bytearray(VECTOR)
    sealed[30] ^= 0xFF
    with pytest.raises(EnvelopeTagMismatch) as info:
        KeyRing(KEK).open(bytes(sealed), REF)
    assert info.value.layer == "key"


def test_minimum_length() -> None:
    ring = KeyRing(KEK)
    empty = ring.seal(b"", REF)
    assert len(empty) == 100 == MIN_LENGTH
    assert ring.open(empty, REF) == b""
    with pytest.raises(UnknownEnvelopeFormat):
        ring.open(empty[:99], REF)
    with pytest.raises(UnknownEnvelopeFormat):
        ring.open(b"CSS1" + bytes(95), REF)
    assert envelope_kek_id(empty[:99]) is None


def test_wrong_magic_is_unknown_format() -> None:
    with pytest.raises(UnknownEnvelopeFormat):
        KeyRing(KEK).open(b"CSS2" + VECTOR[4:], REF)
    with pytest.raises(UnknownEnvelopeFormat):
        KeyRing(KEK).open(b"", REF)


def test_foreign_kek() -> None:
    sealed = KeyRing(OTHER).seal(b"x", REF)
    with pytest.raises(ForeignKek) as info:
        KeyRing(KEK).open(sealed, REF)
    assert "different KEK" in str(info.value)


def test_previous_key_opens_after_rotation_and_new_seals_use_current() -> None:
    old = KeyRing(KEK)
    sealed_old = old.seal(b"before rotation", REF)
    rotated = KeyRing(OTHER, previous=KEK)
    assert rotated.open(sealed_old, REF) == b"before rotation"
    assert not rotated.is_current(sealed_old)
    fresh = rotated.seal(b"after", REF)
    assert envelope_kek_id(fresh) == kek_id(OTHER) == rotated.current_id
    resealed = rotated.reseal(sealed_old, REF)
    assert rotated.is_current(resealed)
    assert KeyRing(OTHER).open(resealed, REF) == b"before rotation"
    # the previous key alone no longer opens what the rotation re-sealed
    with pytest.raises(ForeignKek):
        old.open(resealed, REF)


@pytest.mark.parametrize(
    "key",
    [
        bytes(32),
        bytes([0x11]) * 32,
        bytes(range(32)),
        bytes(range(31, -1, -1)),
        bytes([0xAB, 0xCD]) * 16,
        bytes([0xAB]) * 32,
    ],
    ids=["zeros", "0x11", "ascending", "descending", "abcd", "abab"],
)
def test_weak_keys_rejected(key: bytes) -> None:
    with pytest.raises(WeakKeyError):
        check_kek(key)
    with pytest.raises(WeakKeyError):
        KeyRing(key)
    with pytest.raises(WeakKeyError):
        KeyRing(KEK, previous=key)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrong_length_keys_rejected(length: int) -> None:
    with pytest.raises(WeakKeyError):
        check_kek(hashlib.sha512(b"k").digest()[:length])


def test_repr_never_shows_key_bytes() -> None:
    text = repr(KeyRing(KEK, previous=OTHER))
    assert KEK.hex() not in text
    assert OTHER.hex() not in text
    assert kek_id(KEK).hex() in text
