"""Timestamps on the wire (foundation §1.2): UTC, six fractional digits, `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# ASCII digits only: `\d` alone would also accept other scripts' digits (e.g. `٢٠٢٤`).
_INPUT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$", re.ASCII
)


def format_ts(value: datetime) -> str:
    """`2026-01-01T00:00:00.123456Z` for an aware datetime (naive is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    # Not strftime: `%Y` does not pad years before 1000 to four digits.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def format_ts_or_none(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def parse_ts(text: str) -> datetime | None:
    """Parse an input timestamp; None when it breaks the §1.2 input rule.

    Digits beyond microseconds are truncated; the value must be a real calendar time.
    """
    m = _INPUT_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(6, "0")[:6]
    try:
        return datetime(year, month, day, hour, minute, second, int(frac), tzinfo=UTC)
    except ValueError:
        return None


def utcnow() -> datetime:
    return datetime.now(UTC)
