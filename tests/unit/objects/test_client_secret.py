"""Client secrets and the STS hash format (objects.md §1.1, §7 item 1)."""

from __future__ import annotations

import base64
import re

from argon2.low_level import Type, hash_secret_raw

from caracal_api.applications.secrets import (
    generate_client_secret,
    hash_client_secret,
    hash_client_secret_sync,
    new_client_secret,
    verify_client_secret_sync,
)

HASH_RE = re.compile(r"^argon2id\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")


def test_secret_shape() -> None:
    seen = set()
    for _ in range(50):
        secret = generate_client_secret()
        assert len(secret) == 46
        assert secret.startswith("cs_")
        raw = base64.urlsafe_b64decode(secret[3:] + "=")
        assert len(raw) == 32
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret[3:])
        seen.add(secret)
    assert len(seen) == 50


def test_hash_format_and_independent_verification() -> None:
    secret = generate_client_secret()
    stored = hash_client_secret_sync(secret)
    assert HASH_RE.fullmatch(stored)
    _, salt_b64, hash_b64 = stored.split("$")
    salt = base64.b64decode(salt_b64 + "==")
    digest = base64.b64decode(hash_b64 + "=")
    assert len(salt) == 16
    assert len(digest) == 32
    expected = hash_secret_raw(
        secret.encode(),
        salt,
        time_cost=3,
        memory_cost=65536,
        parallelism=2,
        hash_len=32,
        type=Type.ID,
        version=0x13,
    )
    assert digest == expected


def test_known_vector() -> None:
    stored = hash_client_secret_sync("cs_test", salt=bytes(range(16)))
    assert stored.startswith("argon2id$AAECAwQFBgcICQoLDA0ODw$")
    assert verify_client_secret_sync(stored, "cs_test")


def test_verify() -> None:
    stored = hash_client_secret_sync("right")
    assert verify_client_secret_sync(stored, "right")
    assert not verify_client_secret_sync(stored, "wrong")
    assert not verify_client_secret_sync("$argon2id$v=19$m=65536,t=3,p=2$x$y", "right")
    assert not verify_client_secret_sync("", "right")


async def test_async_helpers() -> None:
    secret, stored = await new_client_secret()
    assert verify_client_secret_sync(stored, secret)
    assert HASH_RE.fullmatch(await hash_client_secret("a caller chosen secret of 32+ chars"))
