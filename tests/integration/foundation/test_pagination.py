"""Query strictness and keyset pages of the standard lists (foundation §9)."""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio

from caracal_api.kit.ids import uuid7
from tests.conftest import Api, assert_envelope
from tests.integration.foundation.support import execute, make_cursor, open_api, ts_text

LISTS = ["/v1/zones", "/v1/admin-tokens"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the whole module (these tests change no process state)."""
    async with open_api(database_dsn, redis_url) as app:
        yield app


BAD_LIMITS = ["abc", "-1", "1e3", "2.5", "99999999999999999999999", "", "501", "0", " 5", "+5"]
BAD_CURSORS = [
    "not-a-cursor",  # decodes to bytes that are not JSON
    "%%%",
    make_cursor({"not": "a cursor"}),
    make_cursor(["ts", "id"]),
    make_cursor({"ts": "", "id": "x"}),
    make_cursor({"ts": "2026-01-01T00:00:00Z", "id": ""}),
    make_cursor({"ts": "2024-13-45T00:00:00Z", "id": "x"}),
    make_cursor({"ts": "2026-01-01T00:00:00+00:00", "id": "x"}),
    make_cursor({"ts": 5, "id": "x"}),
]


# foundation §18 item 38
async def test_bad_limit_is_invalid_query(api: Api) -> None:
    for path in LISTS:
        for value in BAD_LIMITS:
            response = await api.get(f"{path}?limit={value}")
            body = assert_envelope(response, 400, "invalid_query")
            assert body["details"]["issues"][0]["path"] == ["limit"], (path, value)


# foundation §18 item 38
async def test_limit_bounds_and_repetition(api: Api) -> None:
    for path in LISTS:
        for value in ("1", "500"):
            response = await api.get(f"{path}?limit={value}")
            assert response.status_code == 200, response.text
            assert len(response.json()["items"]) <= int(value)
        assert_envelope(await api.get(f"{path}?limit=1&limit=2"), 400, "invalid_query")


# foundation §18 item 39
async def test_bad_cursors(api: Api) -> None:
    for path in LISTS:
        too_long = "A" * 600
        assert_envelope(await api.get(f"{path}?cursor={too_long}"), 400, "invalid_query")
        assert_envelope(await api.get(f"{path}?cursor="), 400, "invalid_query")
        for cursor in BAD_CURSORS:
            response = await api.get(path, params={"cursor": cursor})
            assert_envelope(response, 400, "invalid_cursor")


# foundation §18 item 39 (cursors of other implementations keep working)
async def test_millisecond_cursor_and_extra_keys_accepted(api: Api) -> None:
    cursor = make_cursor({"ts": "2999-01-01T00:00:00.123Z", "id": "z", "extra": 1})
    response = await api.get("/v1/zones", params={"cursor": cursor, "limit": 1})
    assert response.status_code == 200, response.text


async def _insert_zones(api: Api, stamps: list[datetime]) -> list[str]:
    ids = []
    for stamp in stamps:
        zone_id = uuid7()
        ids.append(zone_id)
        await execute(
            api,
            "INSERT INTO zones (id, name, slug, created_at, updated_at)"
            " VALUES (:id, :name, :slug, :at, :at)",
            id=zone_id,
            name=f"paged {zone_id}",
            slug=f"paged-{zone_id}",
            at=stamp,
        )
    return ids


def _old_base() -> datetime:
    # Far before any zone the suite creates; the rows live only during their test.
    return datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=random.randrange(10**6))


async def _remove(api: Api, ids: list[str]) -> None:
    await execute(api, "DELETE FROM zones WHERE id = ANY(:ids)", ids=ids)


async def _pages(api: Api, start_cursor: str, limit: int) -> list[dict]:
    pages = []
    cursor = start_cursor
    while cursor is not None:
        response = await api.get("/v1/zones", params={"limit": limit, "cursor": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        cursor = body["next_cursor"]
        assert len(pages) < 10
    return pages


# foundation §18 item 40
async def test_same_millisecond_rows_page_exactly_once(api: Api) -> None:
    base = _old_base().replace(microsecond=123000)
    offsets = [1, 2, 2, 500, 999]  # all in one millisecond, two share a microsecond
    stamps = [base + timedelta(microseconds=o) for o in offsets]
    ids = await _insert_zones(api, stamps)
    # Start right after the newest of them: only these five rows are older.
    start = make_cursor({"ts": ts_text(base + timedelta(milliseconds=1)), "id": "0"})
    try:
        pages = await _pages(api, start, 2)
    finally:
        await _remove(api, ids)
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert pages[-1]["next_cursor"] is None
    seen = [item["id"] for p in pages for item in p["items"]]
    assert sorted(seen) == sorted(ids)
    assert len(set(seen)) == 5
    expected = [i for _, i in sorted(zip(stamps, ids, strict=True), reverse=True)]
    assert seen == expected  # created_at DESC, id DESC
    # The cursor keeps microseconds.
    assert ".123999Z" in str(pages[0]["items"][0]["created_at"])


# foundation §18 item 41
async def test_full_last_page_yields_empty_page(api: Api) -> None:
    base = _old_base()
    stamps = [base + timedelta(microseconds=n) for n in range(4)]
    ids = await _insert_zones(api, stamps)
    start = make_cursor({"ts": ts_text(base + timedelta(seconds=1)), "id": "0"})
    try:
        pages = await _pages(api, start, 2)
    finally:
        await _remove(api, ids)
    assert [len(p["items"]) for p in pages] == [2, 2, 0]
    assert pages[1]["next_cursor"] is not None
    assert pages[2] == {"items": [], "next_cursor": None}


# foundation §18 items 40, 41 (admin-token list pages the same way)
async def test_admin_token_list_pages_without_duplicates(api: Api) -> None:
    for _ in range(3):
        await api.mint("read", name=f"paged-{secrets.token_hex(3)}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/admin-tokens", params=params)
        body = response.json()
        seen.extend(item["id"] for item in body["items"])
        if body["next_cursor"] is None:
            assert len(body["items"]) < 2
            break
        assert len(body["items"]) == 2
        cursor = body["next_cursor"]
    assert len(seen) == len(set(seen)) >= 4
