"""`fields` projection and CSV rendering shared by the zone-event lists (events.md §9.1)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from caracal_api.kit.timefmt import format_ts

MAX_FIELDS_LENGTH: Final = 1000
CRLF: Final = "\r\n"
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES: Final = (",", '"', "\r", "\n")


class FieldsError(ValueError):
    """The `fields` parameter is unusable (rendered as 400 `invalid_fields`)."""


def parse_fields(raw: str, allowed: Sequence[str]) -> list[str]:
    """Entries of a `fields` comma list, trimmed, empties dropped, duplicates kept once.

    Raises FieldsError when the text exceeds 1000 characters, no entry is left, or an entry
    is not one of `allowed` (the route's export fields).
    """
    if len(raw) > MAX_FIELDS_LENGTH:
        raise FieldsError("fields is longer than 1000 characters")
    allowed_set = frozenset(allowed)
    out: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        if name not in allowed_set:
            raise FieldsError(f"unknown field {name!r}")
        if name not in out:
            out.append(name)
    if not out:
        raise FieldsError("fields names no field")
    return out


def project(row: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """The projection of an export row onto exactly `fields`, in that order."""
    return {name: row.get(name) for name in fields}


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = repr(value)
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
        return text
    return format(value, "f")


def cell_text(value: Any) -> str:
    """A value as CSV cell text before escaping (§9.1 cell rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return _number_text(value)
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " ".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def escape_cell(text: str) -> str:
    """Formula guard (leading `'`), then RFC 4180 quoting when needed."""
    if text.startswith(_FORMULA_STARTS):
        text = "'" + text
    if any(ch in text for ch in _NEEDS_QUOTES):
        text = '"' + text.replace('"', '""') + '"'
    return text


def csv_line(values: Iterable[Any]) -> str:
    return ",".join(escape_cell(cell_text(v)) for v in values) + CRLF


def render_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Header line plus one line per row; every line ends with CRLF."""
    parts = [",".join(columns) + CRLF]
    for row in rows:
        parts.append(csv_line(row.get(name) for name in columns))
    return "".join(parts)


def content_disposition(kind: str, zone_id: str | None) -> str:
    """`attachment; filename="<kind>-<zoneId>.csv"` (zone ids already match the id rule)."""
    name = f"{kind}-{zone_id}.csv" if zone_id is not None else f"{kind}.csv"
    return f'attachment; filename="{name}"'
