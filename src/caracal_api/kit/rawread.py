"""One-statement reads straight on the driver connection, for hot list and get routes.

A read through an ORM session costs three round trips (BEGIN, the query, ROLLBACK) and builds
SQLAlchemy rows; a single SELECT needs neither a transaction nor row objects. The connection
still comes from the engine's pool, so pool size, timeouts and server settings are shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from caracal_api.kit.db import driver_is_unavailable


class RawReader:
    """The pooled asyncpg connection, limited to reads; positional `$n` parameters."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._connection.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._connection.fetchrow(sql, *args)


@asynccontextmanager
async def raw_reader(engine: AsyncEngine) -> AsyncIterator[RawReader]:
    """A pooled connection outside any transaction (autocommit: each statement stands alone).

    A connection that failed at the driver level is invalidated, so the pool replaces it
    instead of handing a dead socket to the next request (the ORM path does this itself).
    """
    async with engine.connect() as conn:
        try:
            yield RawReader(await _driver_connection(conn))
        except BaseException as exc:
            if driver_is_unavailable(exc):
                await conn.invalidate(exc if isinstance(exc, Exception) else None)
            raise


async def _driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    fairy = await conn.get_raw_connection()
    driver = fairy.driver_connection
    assert driver is not None
    return driver
