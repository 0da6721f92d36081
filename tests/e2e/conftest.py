"""The e2e layer: the real server process, once embedded and once on the real services."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import IN_CI, REDIS_URL, unavailable
from tests.e2e.harness import ServerProcess, server_env
from tests.fixtures import pg

pytestmark = pytest.mark.e2e

E2E_TOKEN = "cat_e2e-" + secrets.token_hex(20)
E2E_KEK = "5a1c9e3f7b2d4a6c8e0f1a3b5c7d9e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b1c3d"


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`caracal-api serve` with zero configuration (embedded PostgreSQL and streams)."""
    workdir = tmp_path_factory.mktemp("embedded")
    server = ServerProcess(server_env({}), workdir).start()
    try:
        server.wait_healthy(timeout=180.0)
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def external_dsn() -> AsyncIterator[str]:
    admin = pg.admin_dsn()
    reason = await pg.server_unreachable(admin)
    if reason is not None:
        unavailable(f"PostgreSQL: {reason}")
    name = f"caracal_e2e_{secrets.token_hex(4)}"
    dsn = await pg.create_migrated_database(admin, name)
    yield dsn
    await pg.drop_database(admin, name)


def external_env(dsn: str, **extra: str) -> dict[str, str]:
    """The environment of a server on the machine's PostgreSQL and Redis."""
    return server_env(
        {
            "DATABASE_URL": dsn,
            "REDIS_URL": REDIS_URL,
            "CARACAL_ADMIN_TOKEN": E2E_TOKEN,
            "SECRET_STORE_KEK": E2E_KEK,
            "AUDIT_HMAC_KEY": secrets.token_hex(32),
            "STREAMS_HMAC_KEY": secrets.token_hex(32),
            "LOG_LEVEL": "warning",
            **extra,
        }
    )


@pytest.fixture(scope="session")
def external_server(
    external_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`caracal-api serve` on the machine's PostgreSQL and Redis."""
    workdir: Path = tmp_path_factory.mktemp("external")
    server = ServerProcess(external_env(external_dsn), workdir).start()
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


__all__ = ["E2E_TOKEN", "IN_CI"]
