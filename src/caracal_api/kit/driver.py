"""The asyncpg connection under a unit of work's transaction, for hot statements.

Through SQLAlchemy a text statement costs about four times what the driver needs (statement
construction, cache key, compile, result wrapping): ~0.4–0.5 ms against ~0.12 ms on the
development machine. Hot write paths (audit record, outbox row, resource create, policy
activation) therefore send their SQL on the driver connection, inside the same transaction.

SQLAlchemy sends BEGIN lazily, with a session's first statement; a driver statement before
that would run outside the transaction. The unit of work's first statement is SQLAlchemy's
(`SELECT now()`, the audit time), and `of` begins the transaction itself when nothing has
(and refuses an autocommit connection). Driver errors are not wrapped by SQLAlchemy: kit.db
and kit.uow recognise both forms.

The hottest mutations skip the ORM session altogether: their unit of work runs on a
`DriverTx`, a transaction held directly on the pooled driver connection. A session's
begin and commit cost ~1.5 ms more than the driver's own BEGIN/COMMIT on the development
machine. Services that run there use only `raw(...)` and the helpers built on it, which
accept either form (`Tx`).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caracal_api.kit.rawread import RawSQL


class NotInTransaction(RuntimeError):
    """A driver statement was about to run outside the unit of work's transaction."""


class DriverTx:
    """A unit of work's transaction on the driver connection, without an ORM session.

    `info` plays the part of `AsyncSession.info` for the flags a unit of work reads back
    (kit.uow.OUTBOX_WRITTEN).
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.info: dict[str, Any] = {}


# What a unit of work hands its service function.
Tx = AsyncSession | DriverTx


async def of(db: Tx | AsyncConnection) -> asyncpg.Connection:
    """The driver connection of `db`, which must already be inside its transaction."""
    if isinstance(db, DriverTx):
        return db.connection
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    if not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")  # SQLAlchemy sends its BEGIN first
        if not driver.is_in_transaction():
            raise NotInTransaction("driver statements need a transaction (autocommit connection)")
    return driver


async def raw(db: Tx | AsyncConnection) -> RawSQL:
    """`of(db)` wrapped for repositories that take a RawSQL (the same as kit.rawread's)."""
    return RawSQL(await of(db))
