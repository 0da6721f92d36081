"""Fixtures for the outbox, dispatcher and audit-ingest integration tests.

One migrated database per test session (per xdist worker) and Redis DB index from
CARACAL_TEST_REDIS_URL. Stream names are unique per test wherever the code allows it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.fixtures import pg
from tests.integration.events.events_helpers import RedisServer

REDIS_URL = os.environ.get("CARACAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def events_dsn() -> AsyncIterator[str]:
    """A fresh migrated database for this session (per xdist worker); dropped afterwards."""
    admin = pg.admin_dsn()
    reason = await pg.server_unreachable(admin)
    if reason is not None:
        _unavailable(f"PostgreSQL unavailable: {reason}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"caracal_events_{os.getpid()}_{worker}"
    dsn = await pg.create_migrated_database(admin, name)
    yield dsn
    await pg.drop_database(admin, name)


def make_engine(dsn: str, **kwargs: Any) -> AsyncEngine:
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    return create_async_engine(url, pool_size=kwargs.pop("pool_size", 10), **kwargs)


@pytest.fixture
async def engine(events_dsn: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(events_dsn)
    async with eng.begin() as conn:
        await conn.execute(text("TRUNCATE event_outbox"))
    yield eng
    await eng.dispose()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        _unavailable(f"Redis unavailable: {exc}")
    yield client
    await client.aclose()


@pytest.fixture
def stream_prefix() -> str:
    return f"test.events.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
