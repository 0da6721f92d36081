"""Provider identifiers (objects.md §3.2) and the shared slug rule (§1.5)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from caracal_api.kit.ids import uuid7

PREFIX = "provider://"
RESERVED_PREFIX = "provider://caracal-sys-"
MAX_LENGTH = 512
_IDENTIFIER_RE = re.compile(r"^provider://[a-z0-9]+(?:-[a-z0-9]+)*$")
_NON_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(text: str, fallback: str) -> str:
    """Lower-case; runs outside [a-z0-9] become `-`; trim `-`; empty → fallback."""
    slug = _NON_SLUG_RE.sub("-", text.lower()).strip("-")
    return slug or fallback


def is_valid_identifier(identifier: str) -> bool:
    return len(identifier) <= MAX_LENGTH and _IDENTIFIER_RE.fullmatch(identifier) is not None


def is_reserved(identifier: str) -> bool:
    return identifier.strip().lower().startswith(RESERVED_PREFIX)


def generated_base(name: str | None, kind: str) -> str:
    text = name if name else f"{kind} provider"
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    return PREFIX + slugify(text, "provider")


def candidates(base: str) -> Iterator[str]:
    """base, base-2 … base-999, then base-<uuidv7 hex>."""
    yield base
    for n in range(2, 1000):
        yield f"{base}-{n}"
    yield f"{base}-{uuid7().replace('-', '')}"
