"""Strict reading of query strings (foundation §9.1)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import unquote_to_bytes

from caracal_api.errors import InvalidQuery, issue
from caracal_api.kit.timefmt import parse_ts

_UNSAFE = re.compile(r"[\x00\ud800-\udfff]")
_DIGITS = re.compile(r"[0-9]+")


def _decode(raw: str) -> str:
    data = unquote_to_bytes(raw.replace("+", " "))
    text = data.decode("utf-8")  # UnicodeDecodeError handled by the caller
    if _UNSAFE.search(text):
        raise ValueError("unsafe")
    return text


def _bad(name: str, message: str) -> InvalidQuery:
    return InvalidQuery(
        f"Query parameter {name!r} {message}.", details={"issues": [issue([name], message)]}
    )


class QueryReader:
    """Typed access to the parameters of one query string."""

    def __init__(self, query_string: bytes) -> None:
        self._values: dict[str, list[str]] = {}
        self._broken: set[str] = set()
        text = query_string.decode("latin-1")
        for part in text.split("&") if text else ():
            if part == "":
                continue
            raw_key, _, raw_value = part.partition("=")
            try:
                key = _decode(raw_key)
            except (UnicodeDecodeError, ValueError):
                continue  # an undecodable name cannot be a known parameter
            try:
                value = _decode(raw_value)
            except (UnicodeDecodeError, ValueError):
                self._broken.add(key)
                value = ""
            self._values.setdefault(key, []).append(value)

    def raw(self, name: str) -> str | None:
        values = self._values.get(name)
        if values is None:
            return None
        if name in self._broken:
            raise _bad(name, "is not valid UTF-8 text")
        if len(values) > 1:
            raise _bad(name, "is given more than once")
        return values[0]

    def string(self, name: str, lo: int = 1, hi: int = 128) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not lo <= len(value) <= hi:
            raise _bad(name, f"must be {lo}..{hi} characters")
        return value

    def integer(self, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        if not _DIGITS.fullmatch(value) or len(value) > 20:
            raise _bad(name, f"must be an integer between {lo} and {hi}")
        number = int(value)
        if not lo <= number <= hi:
            raise _bad(name, f"must be an integer between {lo} and {hi}")
        return number

    def enum(self, name: str, allowed: Sequence[str], default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise _bad(name, f"must be one of {', '.join(allowed)}")
        return value

    def timestamp(self, name: str) -> datetime | None:
        value = self.raw(name)
        if value is None:
            return None
        parsed = parse_ts(value)
        if parsed is None:
            raise _bad(name, "must be an ISO-8601 UTC timestamp like 2026-01-01T00:00:00Z")
        return parsed
