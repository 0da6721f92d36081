"""Schema migrations: Alembic upgrades serialised across replicas (schema.md §1).

`caracal-api migrate` (and an embedded-mode start) call `upgrade_head`; `serve`,
`dispatcher`, `audit-ingest` and `check` compare `current_revision` with `HEAD`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

HEAD = "0003_resource_identifier_probe"

# Session-level lock: held across the whole upgrade so replicas migrating at once run one
# after the other, and the later ones find nothing to do.
_LOCK_KEY = "caracal-api::migrate"
_LOCK = text("SELECT pg_advisory_lock(hashtext(:key))").bindparams(key=_LOCK_KEY)
_UNLOCK = text("SELECT pg_advisory_unlock(hashtext(:key))").bindparams(key=_LOCK_KEY)

# src/caracal_api/kit/migrate.py -> the project root holding alembic.ini and migrations/.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


class AuditPartition(NamedTuple):
    name: str
    lower: str
    upper: str


def audit_partition_window(now: datetime, months: int = 4) -> list[AuditPartition]:
    """Monthly audit_events partitions from `now`'s UTC month on (schema.md §2.20).

    Revision 0001 creates this window (current month + 3) and the audit ingest's upkeep
    keeps it current (events.md §6.4); both must produce these names and bounds. Bounds
    are literals with an explicit `+00` offset, so they sit at 00:00 UTC whatever the
    session's TimeZone.
    """
    now = now.astimezone(UTC)
    year, month = now.year, now.month
    window: list[AuditPartition] = []
    for _ in range(months):
        next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
        window.append(
            AuditPartition(
                name=f"audit_events_y{year:04d}m{month:02d}",
                lower=f"{year:04d}-{month:02d}-01 00:00:00+00",
                upper=f"{next_year:04d}-{next_month:02d}-01 00:00:00+00",
            )
        )
        year, month = next_year, next_month
    return window


def sqlalchemy_url(dsn: str) -> URL:
    """The asyncpg SQLAlchemy URL of a libpq-style DSN.

    Accepts `postgres://`, `postgresql://` and any `postgresql+<driver>://`. A unix socket
    given as `?host=/path` passes through (asyncpg reads it); libpq's `sslmode` is renamed
    to asyncpg's `ssl`, which takes the same values.
    """
    url = make_url(dsn)
    if url.get_backend_name() not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL DSN: {url.render_as_string(hide_password=True)}")
    url = url.set(drivername="postgresql+asyncpg")
    if "sslmode" in url.query and "ssl" not in url.query:
        url = url.update_query_dict({"ssl": url.query["sslmode"]}).difference_update_query(
            ["sslmode"]
        )
    return url


def migrations_dir() -> Path:
    path = _PROJECT_ROOT / "migrations"
    if not (path / "env.py").is_file():
        raise RuntimeError(f"caracal-api migrations not found at {path}")
    return path


def alembic_config(dsn: str) -> Config:
    """Alembic configuration for `dsn`, independent of the current directory."""
    ini = _PROJECT_ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolates '%', which percent-encoded passwords contain.
    rendered = sqlalchemy_url(dsn).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def _engine(dsn: str) -> AsyncEngine:
    # No pool: a session advisory lock must die with its connection, never be handed back.
    return create_async_engine(sqlalchemy_url(dsn), poolclass=NullPool)


def _run_upgrade(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_head(dsn: str) -> None:
    """Upgrade the database to `HEAD` while holding the migrate advisory lock.

    Blocks while another process migrates. Raises whatever the failing migration raised;
    the failed revision's transaction is rolled back.
    """
    config = alembic_config(dsn)
    engine = _engine(dsn)
    try:
        async with engine.connect() as conn:
            await conn.execute(_LOCK)
            await conn.commit()
            try:
                await conn.run_sync(_run_upgrade, config)
                await conn.commit()
            finally:
                try:
                    await conn.rollback()
                    await conn.execute(_UNLOCK)
                    await conn.commit()
                except SQLAlchemyError:
                    # The connection is unusable; closing it releases the lock anyway.
                    await conn.invalidate()
    finally:
        await engine.dispose()


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(dsn: str) -> str | None:
    """The revision recorded in alembic_version; None when the table is missing or empty."""
    engine = _engine(dsn)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_read_revision)
    finally:
        await engine.dispose()
