"""Alembic environment: asyncpg, raw-SQL revisions, models as the comparison target.

The database comes from, in order: a connection handed over in
`config.attributes["connection"]` (what `caracal-api migrate` does, under its advisory
lock), `sqlalchemy.url`, then the DATABASE_URL environment variable.
"""

from __future__ import annotations

import asyncio
import os
import re
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from caracal_api.kit.migrate import sqlalchemy_url
from caracal_api.models import Base

config = context.config
target_metadata = Base.metadata

# Only the alembic command line configures logging: a programmatic upgrade runs inside the
# service, whose log setup must stay as it is.
if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name)

# Monthly partitions and the default partition of audit_events: created at run time (by
# 0001 and by the audit ingest's upkeep), so they are not models. Their indexes are
# inherited from the parent's, which is compared.
_AUDIT_PARTITION = re.compile(r"audit_events_(default|y\d{4}m\d{2})")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Limit reflection to the tables the models describe.

    The database is shared with other Caracal components (STS, coordinator, audit service)
    whose own tables are not ours to compare. Sequences need no filter: autogenerate never
    compares them, and the column default that uses audit_ingest_alerts_id_seq is
    recognised as bigserial-like (owned by its column) and left out of the comparison.
    """
    if type_ != "table" or name is None:
        return True
    if _AUDIT_PARTITION.fullmatch(name):
        return False
    return name in target_metadata.tables


# Alembic reflects an index column's collation away (`identifier COLLATE "C"` comes back as
# `identifier`), so it would report these indexes as changed on every comparison. Their
# definitions are compared exactly, deparsed by PostgreSQL, in tests/integration/test_schema.py.
_COLLATED_INDEXES = frozenset({"resources_zone_identifier_probe_idx"})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    return not (type_ == "index" and name in _COLLATED_INDEXES)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        include_object=include_object,
        compare_type=True,
        compare_server_default=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("no database: set DATABASE_URL or sqlalchemy.url")
    return sqlalchemy_url(url).render_as_string(hide_password=False)


async def _run_async() -> None:
    engine = create_async_engine(_database_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
