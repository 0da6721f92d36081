"""Opaque keyset cursors with microsecond precision (foundation §9.2)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caracal_api.errors import InvalidCursor
from caracal_api.kit.query import QueryReader
from caracal_api.kit.timefmt import format_ts, parse_ts


@dataclass(frozen=True)
class Cursor:
    ts: datetime
    id: str


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: Cursor | None


def encode_cursor(ts: datetime | str, row_id: str) -> str:
    """`ts` is the row's timestamp, or its wire text when the database rendered it."""
    text = ts if isinstance(ts, str) else format_ts(ts)
    payload = json.dumps({"ts": text, "id": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def decode_cursor(text: str) -> Cursor:
    try:
        padded = text + "=" * (-len(text) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise InvalidCursor() from None
    if not isinstance(data, dict):
        raise InvalidCursor()
    ts, row_id = data.get("ts"), data.get("id")
    if not isinstance(ts, str) or not isinstance(row_id, str) or not ts or not row_id:
        raise InvalidCursor()
    parsed = parse_ts(ts)
    if parsed is None:
        raise InvalidCursor("The cursor holds an invalid timestamp.")
    return Cursor(parsed, row_id)


def page_params(
    query: QueryReader, *, default_limit: int = 200, max_limit: int = 500
) -> PageParams:
    """`limit` and `cursor`; call after validating route-specific filters."""
    limit = query.integer("limit", 1, max_limit, default_limit)
    assert limit is not None
    raw = query.string("cursor", 1, 512)
    return PageParams(limit, decode_cursor(raw) if raw is not None else None)


def page(
    items: Sequence[dict[str, Any]],
    rows: Sequence[Any],
    limit: int,
    *,
    ts_attr: str = "created_at",
) -> dict[str, Any]:
    """`{"items", "next_cursor"}`: a cursor exactly when the page is full."""
    next_cursor = None
    if len(rows) == limit and rows:
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, ts_attr), last.id)
    return {"items": list(items), "next_cursor": next_cursor}
