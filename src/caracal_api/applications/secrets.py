"""Client secrets and their stored hash (objects.md §1.1).

The hash text `argon2id$<salt>$<hash>` (standard base64 without padding) is what the STS
verifies; it is deliberately not the PHC format used for admin tokens.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets as _secrets

from argon2.low_level import Type, hash_secret_raw

from caracal_api.kit.hashing import run_hash

SECRET_PREFIX = "cs_"  # noqa: S105 - the public prefix, not a secret
TIME_COST = 3
MEMORY_KIB = 65536
PARALLELISM = 2
HASH_BYTES = 32
SALT_BYTES = 16
_HASH_RE = re.compile(r"^argon2id\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$")


def generate_client_secret() -> str:
    """`cs_` + base64url (no padding) of 32 CSPRNG bytes: 46 characters."""
    return SECRET_PREFIX + _secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _raw(secret: str, salt: bytes) -> bytes:
    return hash_secret_raw(
        secret.encode("utf-8"),
        salt,
        time_cost=TIME_COST,
        memory_cost=MEMORY_KIB,
        parallelism=PARALLELISM,
        hash_len=HASH_BYTES,
        type=Type.ID,
        version=19,
    )


def hash_client_secret_sync(secret: str, salt: bytes | None = None) -> str:
    """The stored hash text; blocking (64 MiB, tens of milliseconds)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    return f"argon2id${_b64(salt)}${_b64(_raw(secret, salt))}"


def verify_client_secret_sync(stored: str, secret: str) -> bool:
    m = _HASH_RE.fullmatch(stored)
    if m is None:
        return False
    expected = _unb64(m[2])
    return hmac.compare_digest(_raw(secret, _unb64(m[1])), expected)


async def hash_client_secret(secret: str) -> str:
    """Hash on the shared bounded Argon2 pool; call before the transaction opens."""
    return await run_hash(hash_client_secret_sync, secret)


async def new_client_secret() -> tuple[str, str]:
    """A fresh secret and its hash."""
    secret = generate_client_secret()
    return secret, await hash_client_secret(secret)
