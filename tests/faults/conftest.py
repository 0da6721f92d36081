"""Fixtures of the fault tests: private servers to break, throwaway databases to use.

Every test here runs real processes (`caracal-api serve`, `dispatcher`, `audit-ingest`)
against a private Redis (and, for the PostgreSQL restart, a private PostgreSQL cluster), so
stopping or killing a dependency never disturbs the machine's own services.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from caracal_api.kit.migrate import upgrade_head
from tests.conftest import unavailable
from tests.faults.services import PostgresServer, RedisServer
from tests.fixtures import pg
from tests.fixtures.http_servers import _local_https_server, local_https, tls_ca, tls_ca_file

__all__ = ["_local_https_server", "local_https", "tls_ca", "tls_ca_file"]


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def scratch_dsn() -> AsyncIterator[str]:
    """A migrated throwaway database on the test PostgreSQL server (never stopped here)."""
    admin = pg.admin_dsn()
    reason = await pg.server_unreachable(admin)
    if reason is not None:
        unavailable(f"PostgreSQL: {reason}")
    name = f"caracal_faults_{secrets.token_hex(4)}"
    dsn = await pg.create_migrated_database(admin, name)
    try:
        yield dsn
    finally:
        await pg.drop_database(admin, name)


@pytest_asyncio.fixture(loop_scope="session")
async def private_postgres() -> AsyncIterator[PostgresServer]:
    """A private PostgreSQL cluster with a migrated `caracal` database, removed afterwards."""
    server = PostgresServer()
    try:
        server.initdb().start()
        await pg.create_database(server.dsn(), "caracal")
        await upgrade_head(server.dsn("caracal"))
        yield server
    finally:
        server.close()
