"""Redaction of event metadata before it leaves the API (events.md §9.1)."""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "set_cookie",
        "client_secret",
        "private_key",
        "session",
        "session_id",
        "assertion",
    }
)


def redact(value: Any) -> Any:
    """Replace the value of every secret-named key, recursively through objects and arrays."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in SECRET_KEYS else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
