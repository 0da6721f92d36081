"""kit.wirejson.ts renders in PostgreSQL exactly what kit.timefmt.format_ts renders in Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import text

from caracal_api.kit.timefmt import format_ts
from caracal_api.kit.wirejson import ts
from tests.conftest import Api

SAMPLES = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, 0, 7, tzinfo=UTC),
    datetime(1999, 7, 4, 1, 2, 3, 450000, tzinfo=timezone(timedelta(hours=-7))),
    datetime(2030, 6, 15, 0, 0, 0, 100, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


async def test_timestamps_render_identically(api: Api) -> None:
    async with api.runtime.engine.connect() as conn:
        # Whatever the session's time zone, the rendering is UTC.
        await conn.execute(text("SET TIME ZONE 'America/New_York'"))
        for value in SAMPLES:
            rendered = (
                await conn.execute(text(f"SELECT {ts('CAST(:v AS timestamptz)')}"), {"v": value})
            ).scalar_one()
            assert rendered == format_ts(value), value
        assert (await conn.execute(text(f"SELECT {ts('NULL::timestamptz')}"))).scalar_one() is None
        await conn.rollback()
