"""Engines, sessions and the translation of database failures into client answers."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from caracal_api.config import Settings
from caracal_api.errors import CaracalError, DatabaseUnavailable

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# read_only_sql_transaction: the server is a standby, or a primary demoted by a failover.
READ_ONLY_SQLSTATE = "25006"
# Connection failures, admin shutdown, statement timeout / cancel, too many connections,
# a read-only server.
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "57014",
        "57P01",
        "57P02",
        "57P03",
        "53300",
        "08000",
        "08003",
        "08006",
        "08001",
        "08004",
        READ_ONLY_SQLSTATE,
    }
)


def sqlalchemy_url(dsn: str) -> str:
    """Any postgres DSN → the `postgresql+asyncpg://` form SQLAlchemy wants."""
    parts = urlsplit(dsn)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def asyncpg_dsn(dsn: str) -> str:
    """Any postgres DSN → the plain `postgresql://` form asyncpg.connect wants."""
    parts = urlsplit(dsn)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def server_settings(settings: Settings) -> dict[str, str]:
    return {
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "idle_in_transaction_session_timeout": "30000",
        "application_name": settings.worker_id[:63],
    }


def create_engine(settings: Settings, dsn: str, *, pool_size: int | None = None) -> AsyncEngine:
    """The pooled engine of a process (foundation §12)."""
    connect_args: dict[str, Any] = {"server_settings": server_settings(settings)}
    if settings.database_direct_url:
        # Behind a transaction-pooling PgBouncer a prepared statement does not survive
        # the next transaction's server connection.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    engine = create_async_engine(
        sqlalchemy_url(dsn),
        pool_size=pool_size or settings.db_pool_max,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_ms / 1000,
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "handle_error", _read_only_is_disconnect)
    return engine


def _read_only_is_disconnect(context: ExceptionContext) -> None:
    """A read-only server answered: drop the pool, so new connections follow the DSN.

    After a failover the old primary may stay reachable as a standby; pooled connections
    to it would otherwise fail every write until the process restarts.
    """
    if sqlstate(context.original_exception) == READ_ONLY_SQLSTATE:
        context.is_disconnect = True


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _driver_error(exc: BaseException) -> BaseException | None:
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None
    return getattr(orig, "__cause__", None) or orig


def sqlstate(exc: BaseException) -> str | None:
    """SQLSTATE of a SQLAlchemy-wrapped asyncpg error, when there is one."""
    for candidate in (getattr(exc, "orig", None), _driver_error(exc), exc):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def constraint_name(exc: BaseException) -> str | None:
    """Constraint named by an integrity error (asyncpg reports it structurally)."""
    for candidate in (_driver_error(exc), getattr(exc, "orig", None), exc):
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str):
            return name
    return None


def is_retryable(exc: BaseException) -> bool:
    """Serialization failure or deadlock, from SQLAlchemy or straight from the driver."""
    if isinstance(exc, asyncpg.PostgresError):
        return exc.sqlstate in RETRYABLE_SQLSTATES
    return isinstance(exc, sa_exc.DBAPIError) and sqlstate(exc) in RETRYABLE_SQLSTATES


def driver_is_unavailable(exc: BaseException) -> bool:
    """A raw asyncpg failure (no SQLAlchemy wrapper) that means the server is out of reach."""
    if isinstance(exc, asyncpg.PostgresConnectionError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return exc.sqlstate in _UNAVAILABLE_SQLSTATES
    return isinstance(exc, asyncpg.InterfaceError | ConnectionError | OSError)


def unavailable_error(exc: BaseException) -> CaracalError | None:
    """DatabaseUnavailable for connection, pool and timeout failures; None otherwise."""
    if driver_is_unavailable(exc):
        return DatabaseUnavailable()
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailable("No database connection became free in time; retry later.")
    if isinstance(exc, ConnectionError | OSError | asyncio.TimeoutError):
        return DatabaseUnavailable()
    if is_retryable(exc):
        # Still conflicting after the runner's retries: contention, not a client error.
        return DatabaseUnavailable(
            "The change kept conflicting with concurrent changes; retry later."
        )
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or sqlstate(exc) in _UNAVAILABLE_SQLSTATES:
            return DatabaseUnavailable()
        driver = _driver_error(exc)
        name = type(driver).__name__ if driver is not None else ""
        if isinstance(driver, OSError | ConnectionError) or name in {
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "InterfaceError",
            "ConnectionFailureError",
            "TooManyConnectionsError",
            "InternalClientError",
        }:
            return DatabaseUnavailable()
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError):
        return DatabaseUnavailable()
    return None
