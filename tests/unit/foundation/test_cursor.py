"""Keyset cursors (foundation §9.2): encoding, decoding and page assembly."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from caracal_api.errors import InvalidCursor
from caracal_api.kit.pagination import decode_cursor, encode_cursor, page


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_cursor(value: object) -> str:
    return b64(json.dumps(value).encode())


def test_encoding_is_unpadded_base64url_of_ts_and_id() -> None:
    ts = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    cursor = encode_cursor(ts, "0190c7a2-0000-7000-8000-000000000001")
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    padded = cursor + "=" * (-len(cursor) % 4)
    payload = json.loads(base64.urlsafe_b64decode(padded))
    assert payload == {
        "ts": "2026-01-01T00:00:00.123456Z",
        "id": "0190c7a2-0000-7000-8000-000000000001",
    }


def test_round_trip_keeps_microseconds() -> None:
    ts = datetime(2026, 5, 17, 12, 30, 45, 1, tzinfo=UTC)
    decoded = decode_cursor(encode_cursor(ts, "abc"))
    assert (decoded.ts, decoded.id) == (ts, "abc")


def test_non_utc_timestamps_are_rendered_in_utc() -> None:
    ts = datetime(2026, 1, 1, 2, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    decoded = decode_cursor(encode_cursor(ts, "x"))
    assert decoded.ts == datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)


def test_millisecond_cursors_of_other_implementations_are_accepted() -> None:
    decoded = decode_cursor(raw_cursor({"ts": "2026-01-01T00:00:00.123Z", "id": "r"}))
    assert decoded.ts == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


def test_extra_keys_are_ignored_and_padding_is_tolerated() -> None:
    text = raw_cursor({"ts": "2026-01-01T00:00:00Z", "id": "r", "extra": [1]})
    assert decode_cursor(text).id == "r"
    padded = base64.urlsafe_b64encode(b'{"ts":"2026-01-01T00:00:00Z","id":"rr"}').decode()
    assert decode_cursor(padded).id == "rr"


@pytest.mark.parametrize(
    "text",
    [
        "!!!!",
        "not a cursor",
        "A",
        b64(b"\xff\xfe"),
        b64(b"{not json"),
        raw_cursor({"not": "a cursor"}),
        raw_cursor(["2026-01-01T00:00:00Z", "id"]),
        raw_cursor("2026-01-01T00:00:00Z"),
        raw_cursor(None),
        raw_cursor({"ts": "2026-01-01T00:00:00Z"}),
        raw_cursor({"id": "x"}),
        raw_cursor({"ts": "", "id": "x"}),
        raw_cursor({"ts": "2026-01-01T00:00:00Z", "id": ""}),
        raw_cursor({"ts": 1767225600, "id": "x"}),
        raw_cursor({"ts": "2026-01-01T00:00:00Z", "id": 7}),
        raw_cursor({"ts": "2024-13-45T00:00:00Z", "id": "x"}),
        raw_cursor({"ts": "2026-01-01T00:00:00+00:00", "id": "x"}),
        raw_cursor({"ts": "yesterday", "id": "x"}),
    ],
)
def test_bad_cursors_are_invalid_cursor(text: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(text)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_cursor"


@dataclass
class Row:
    id: str
    created_at: datetime


def test_page_has_a_cursor_exactly_when_full() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [Row(f"r{i}", base + timedelta(microseconds=i)) for i in range(3)]
    items = [{"id": r.id} for r in rows]
    full = page(items, rows, 3)
    assert full["items"] == items
    assert full["next_cursor"] is not None
    last = decode_cursor(full["next_cursor"])
    assert (last.ts, last.id) == (rows[-1].created_at, "r2")
    assert page(items, rows, 4) == {"items": items, "next_cursor": None}
    assert page([], [], 2) == {"items": [], "next_cursor": None}
