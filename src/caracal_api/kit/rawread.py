"""One-statement reads straight on the driver connection, for hot list and get routes.

A read through an ORM session costs three round trips (BEGIN, the query, ROLLBACK) and builds
SQLAlchemy rows; a single SELECT needs neither a transaction nor row objects. The connection
still comes from the engine's pool, so pool size, timeouts and server settings are shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from caracal_api.kit.db import driver_is_unavailable


class RawSQL:
    """Statements on an asyncpg connection; positional `$n` parameters, Record rows.

    Outside a transaction (`raw_reader`) each statement stands alone; inside a unit of work
    (`kit.driver.raw`) statements join its transaction.
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._connection.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._connection.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._connection.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self._connection.execute(sql, *args)


@asynccontextmanager
async def raw_reader(engine: AsyncEngine) -> AsyncIterator[RawSQL]:
    """A pooled connection outside any transaction (autocommit: each statement stands alone).

    A connection that failed at the driver level, or whose statement was cancelled midway,
    is invalidated, so the pool replaces it instead of handing a dead or busy socket to the
    next request (the ORM path does this itself).
    """
    async with engine.connect() as conn:
        try:
            yield RawSQL(await _driver_connection(conn))
        except BaseException as exc:
            if _unusable_after(exc):
                await conn.invalidate(exc if isinstance(exc, Exception) else None)
            raise


@asynccontextmanager
async def driver_transaction(
    engine: AsyncEngine, *, async_commit: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on a pooled driver connection, committed when the block ends.

    `async_commit`: COMMIT does not wait for the WAL flush (SET LOCAL synchronous_commit);
    BEGIN and the SET go out as one simple query, one round trip instead of two.
    An exception rolls the transaction back, so the connection goes back to the pool idle;
    a driver-level failure or a cancellation invalidates it instead.
    """
    async with engine.connect() as conn:
        connection = await _driver_connection(conn)
        try:
            if async_commit:
                await connection.execute("BEGIN; SET LOCAL synchronous_commit TO off")
                try:
                    yield connection
                except Exception:
                    await _rollback_if_usable(connection)
                    raise
                await connection.execute("COMMIT")
            else:
                async with connection.transaction():
                    yield connection
        except BaseException as exc:
            if _unusable_after(exc) or connection.is_in_transaction():
                await conn.invalidate(exc if isinstance(exc, Exception) else None)
            raise


async def _rollback_if_usable(connection: asyncpg.Connection) -> None:
    """ROLLBACK after a failed statement; a connection that cannot is invalidated later."""
    if connection.is_closed() or not connection.is_in_transaction():
        return
    # A failed ROLLBACK leaves it in a transaction, and the caller invalidates it.
    with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        await connection.execute("ROLLBACK")


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine, *, async_commit: bool) -> AsyncIterator[RawSQL]:
    """A short transaction for `RawSQL` statements (the dispatcher's claim, mark, release)."""
    async with driver_transaction(engine, async_commit=async_commit) as connection:
        yield RawSQL(connection)


def _unusable_after(exc: BaseException) -> bool:
    """A failure after which the connection must not go back to the pool as it is."""
    return not isinstance(exc, Exception) or driver_is_unavailable(exc)


async def _driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    fairy = await conn.get_raw_connection()
    driver = fairy.driver_connection
    assert driver is not None
    return driver
