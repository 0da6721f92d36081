"""Argon2id off the event loop, on one bounded pool shared by every caller.

Each hash uses 64 MiB, so the pool (CPU count, at most 4) bounds memory as well as CPU;
admin-token verification and client-secret hashing share it (objects.md §1.1).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

P = ParamSpec("P")
T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 4), thread_name_prefix="argon2")

# foundation §6.2: m=65536, t=3, p=2, 16-byte salt, 32-byte output, PHC string.
TOKEN_HASHER = PasswordHasher(
    time_cost=3, memory_cost=65536, parallelism=2, hash_len=32, salt_len=16
)


async def run_hash(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a CPU-heavy hashing function on the shared pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, lambda: fn(*args, **kwargs))


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def hash_admin_token(plaintext: str) -> str:
    return TOKEN_HASHER.hash(plaintext)


def verify_admin_token(token_hash: str, plaintext: str) -> bool:
    """Verify against any Argon2id PHC parameters stored in the row."""
    if not token_hash.startswith("$argon2id$"):
        return False
    try:
        return TOKEN_HASHER.verify(token_hash, plaintext)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
