"""UUIDv7 identifiers and the id rule for path parameters (foundation §1.1)."""

from __future__ import annotations

import os
import re
import time
import uuid

ID_RE = re.compile(r"^[A-Za-z0-9_.\-:]{1,128}$")

_last_ms = 0
_seq = 0


def uuid7() -> str:
    """A UUIDv7 string, lower-case with hyphens, monotonic within this process.

    Within one millisecond a 12-bit counter (seeded randomly) keeps ids increasing, so ids
    minted in a burst still sort in creation order.
    """
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000
    if ms > _last_ms:
        _last_ms = ms
        _seq = int.from_bytes(os.urandom(2), "big") & 0x7FF
    else:
        _seq += 1
        if _seq > 0xFFF:
            _last_ms += 1
            _seq = 0
        ms = _last_ms
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))


def is_valid_id(value: str) -> bool:
    return ID_RE.fullmatch(value) is not None
