"""Strict query-string reading (foundation §9.1) and the standard list parameters (§9.2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caracal_api.errors import InvalidCursor, InvalidQuery
from caracal_api.kit.pagination import encode_cursor, page_params
from caracal_api.kit.query import QueryReader


def reader(query: str | bytes) -> QueryReader:
    return QueryReader(query.encode("latin-1") if isinstance(query, str) else query)


def test_unknown_parameters_are_ignored() -> None:
    q = reader("foo=1&foo=2&bar=%ff&limit=5")
    assert q.integer("limit", 1, 500, 200) == 5
    assert q.raw("missing") is None


def test_percent_and_plus_decoding() -> None:
    q = reader("name=a+b%20c%2Bd&uni=%C3%A9t%C3%A9")
    assert q.raw("name") == "a b c+d"
    assert q.raw("uni") == "été"


def test_empty_pieces_are_skipped() -> None:
    q = reader("&&limit=3&")
    assert q.integer("limit", 1, 500) == 3


def test_repeated_single_valued_parameter_is_invalid() -> None:
    with pytest.raises(InvalidQuery) as caught:
        reader("limit=1&limit=2").integer("limit", 1, 500)
    assert caught.value.details == {
        "issues": [{"path": ["limit"], "message": "is given more than once"}]
    }


@pytest.mark.parametrize("raw", ["name=%ff", "name=%C3", "name=%ED%A0%80", "name=a%00b"])
def test_undecodable_or_unsafe_values_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidQuery):
        reader(raw).raw("name")


# foundation §9.1 integer rule (checklist item 38 reads it through `limit`)
@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "-1",
        "1e3",
        "2.5",
        "99999999999999999999999",
        "",
        " 1",
        "1 ",
        "+1",
        "0x10",
        "%D9%A1%D9%A2",
    ],
)
def test_integer_rule_rejects(value: str) -> None:
    with pytest.raises(InvalidQuery):
        reader(f"limit={value}").integer("limit", 1, 500)


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("500", 500), ("007", 7)])
def test_integer_rule_accepts(value: str, expected: int) -> None:
    assert reader(f"limit={value}").integer("limit", 1, 500) == expected


@pytest.mark.parametrize("value", ["0", "501"])
def test_integer_range(value: str) -> None:
    with pytest.raises(InvalidQuery):
        reader(f"limit={value}").integer("limit", 1, 500)


def test_integer_default_when_absent() -> None:
    assert reader("").integer("limit", 1, 500, 200) == 200


def test_enum_is_case_sensitive() -> None:
    assert reader("status=active").enum("status", ("active", "archived")) == "active"
    with pytest.raises(InvalidQuery):
        reader("status=Active").enum("status", ("active", "archived"))
    assert reader("").enum("status", ("active",), "active") == "active"


def test_string_length_bounds() -> None:
    assert reader("s=" + "x" * 128).string("s") == "x" * 128
    with pytest.raises(InvalidQuery):
        reader("s=" + "x" * 129).string("s")
    with pytest.raises(InvalidQuery):
        reader("s=").string("s")


def test_string_filters_keep_injection_text_verbatim() -> None:
    value = reader("application_id=%27%20OR%201%3D1--").string("application_id")
    assert value == "' OR 1=1--"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.123456789Z", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T23:59:59.5Z", datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=UTC)),
    ],
)
def test_timestamp_accepts(value: str, expected: datetime) -> None:
    assert reader(f"since={value}").timestamp("since") == expected


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-45T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-01-01T00:00:00%2B00:00",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00.1234567890Z",
        "",
    ],
)
def test_timestamp_rejects(value: str) -> None:
    with pytest.raises(InvalidQuery):
        reader(f"since={value}").timestamp("since")


def test_page_params_defaults() -> None:
    params = page_params(reader(""))
    assert (params.limit, params.cursor) == (200, None)


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=", "limit=abc", "limit=1&limit=1", "cursor="]
)
def test_page_params_invalid_query(query: str) -> None:
    with pytest.raises(InvalidQuery):
        page_params(reader(query))


def test_cursor_length_is_checked_before_decoding() -> None:
    with pytest.raises(InvalidQuery):
        page_params(reader("cursor=" + "A" * 600))
    with pytest.raises(InvalidCursor):
        page_params(reader("cursor=" + "A" * 512))


def test_page_params_with_cursor() -> None:
    ts = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    params = page_params(reader(f"limit=2&cursor={encode_cursor(ts, 'row-1')}"))
    assert params.limit == 2
    assert params.cursor is not None
    assert (params.cursor.ts, params.cursor.id) == (ts, "row-1")
