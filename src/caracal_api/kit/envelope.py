"""CSS1 envelope encryption (objects.md §1.3).

An envelope is ``"CSS1" ‖ kek_id (8) ‖ dek_nonce (12) ‖ dek_ct (48) ‖ val_nonce (12) ‖
val_ct``: a fresh 32-byte data key (DEK) seals the value under the caller's AAD, and the
master key (KEK) seals the DEK under the fixed AAD ``caracal.css1.dek``. Both layers are
ChaCha20-Poly1305. ``kek_id`` (first 8 bytes of SHA-256 of the KEK) picks the key on open,
so envelopes sealed under ``SECRET_STORE_KEK_PREVIOUS`` keep opening during a rotation.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from caracal_api.config import is_weak_kek

MAGIC = b"CSS1"
DEK_AAD = b"caracal.css1.dek"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEK_ID_BYTES = 8
_DEK_CT_BYTES = KEY_BYTES + TAG_BYTES
_HEADER = len(MAGIC) + KEK_ID_BYTES
_VAL_NONCE_AT = _HEADER + NONCE_BYTES + _DEK_CT_BYTES
_VAL_CT_AT = _VAL_NONCE_AT + NONCE_BYTES
MIN_LENGTH = _VAL_CT_AT + TAG_BYTES  # 100: an empty value still carries its tag


class EnvelopeError(Exception):
    """An envelope that does not open. The message never contains key or value bytes."""


class UnknownEnvelopeFormat(EnvelopeError):
    def __init__(self) -> None:
        super().__init__("unknown envelope format")


class ForeignKek(EnvelopeError):
    def __init__(self) -> None:
        super().__init__("envelope sealed under a different KEK")


class EnvelopeTagMismatch(EnvelopeError):
    def __init__(self, layer: str) -> None:
        self.layer = layer
        super().__init__(f"envelope authentication failed ({layer} layer)")


class WeakKeyError(ValueError):
    """A KEK that is not 32 bytes or is weak (config.is_weak_kek)."""


def kek_id(key: bytes) -> bytes:
    """First 8 bytes of SHA-256(key)."""
    return hashlib.sha256(key).digest()[:KEK_ID_BYTES]


def check_kek(key: bytes) -> bytes:
    """Return `key` when it is a usable KEK, else raise WeakKeyError."""
    if len(key) != KEY_BYTES:
        raise WeakKeyError(f"a KEK must be exactly {KEY_BYTES} bytes")
    if is_weak_kek(key):
        raise WeakKeyError("the KEK is weak (constant, sequential or repeating bytes)")
    return bytes(key)


def envelope_kek_id(envelope: bytes) -> bytes | None:
    """The kek_id an envelope names, or None when it is not a CSS1 envelope."""
    if len(envelope) < MIN_LENGTH or envelope[:4] != MAGIC:
        return None
    return bytes(envelope[len(MAGIC) : _HEADER])


def _seal_with(
    kek: bytes, dek: bytes, dek_nonce: bytes, val_nonce: bytes, value: bytes, aad: str
) -> bytes:
    """Deterministic core of `seal`; exists so tests can pin known-answer vectors."""
    dek_ct = ChaCha20Poly1305(kek).encrypt(dek_nonce, dek, DEK_AAD)
    val_ct = ChaCha20Poly1305(dek).encrypt(val_nonce, value, aad.encode("utf-8"))
    return b"".join((MAGIC, kek_id(kek), dek_nonce, dek_ct, val_nonce, val_ct))


@dataclass(frozen=True, repr=False)
class KeyRing:
    """The current KEK (seals and opens) and an optional previous one (opens only)."""

    current: bytes
    previous: bytes | None = None

    def __post_init__(self) -> None:
        check_kek(self.current)
        if self.previous is not None:
            check_kek(self.previous)

    def __repr__(self) -> str:  # never print key bytes
        prev = self.previous_id.hex() if self.previous_id else None
        return f"KeyRing(current={self.current_id.hex()}, previous={prev})"

    @property
    def current_id(self) -> bytes:
        return kek_id(self.current)

    @property
    def previous_id(self) -> bytes | None:
        return None if self.previous is None else kek_id(self.previous)

    def is_current(self, envelope: bytes) -> bool:
        """True when `envelope` is CSS1 and names the current KEK (no decryption)."""
        return envelope_kek_id(envelope) == self.current_id

    def seal(self, value: bytes, aad: str) -> bytes:
        """Seal `value` under a fresh DEK with the current KEK; `aad` binds it to its place."""
        dek = bytearray(os.urandom(KEY_BYTES))
        try:
            return _seal_with(
                self.current,
                bytes(dek),
                os.urandom(NONCE_BYTES),
                os.urandom(NONCE_BYTES),
                value,
                aad,
            )
        finally:
            dek[:] = bytes(KEY_BYTES)

    def open(self, envelope: bytes, aad: str) -> bytes:
        """Open an envelope sealed under the current or the previous KEK.

        Raises UnknownEnvelopeFormat, ForeignKek or EnvelopeTagMismatch.
        """
        envelope = bytes(envelope)
        named = envelope_kek_id(envelope)
        if named is None:
            raise UnknownEnvelopeFormat()
        if named == self.current_id:
            kek = self.current
        elif self.previous is not None and named == self.previous_id:
            kek = self.previous
        else:
            raise ForeignKek()
        dek_nonce = envelope[_HEADER : _HEADER + NONCE_BYTES]
        dek_ct = envelope[_HEADER + NONCE_BYTES : _VAL_NONCE_AT]
        val_nonce = envelope[_VAL_NONCE_AT:_VAL_CT_AT]
        val_ct = envelope[_VAL_CT_AT:]
        try:
            dek = bytearray(ChaCha20Poly1305(kek).decrypt(dek_nonce, dek_ct, DEK_AAD))
        except InvalidTag:
            raise EnvelopeTagMismatch("key") from None
        try:
            return ChaCha20Poly1305(bytes(dek)).decrypt(val_nonce, val_ct, aad.encode("utf-8"))
        except InvalidTag:
            raise EnvelopeTagMismatch("value") from None
        finally:
            dek[:] = bytes(KEY_BYTES)

    def reseal(self, envelope: bytes, aad: str) -> bytes:
        """Open with whichever key applies and seal again under the current KEK."""
        return self.seal(self.open(envelope, aad), aad)
