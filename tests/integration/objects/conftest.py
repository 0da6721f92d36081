"""Fixtures of the objects integration tests: local HTTPS servers and small helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_asyncio
from sqlalchemy import text

from tests.conftest import Api, AppFactory
from tests.fixtures.http_servers import (
    _local_http_server,
    _local_https_server,
    local_http,
    local_https,
    tls_ca,
    tls_ca_file,
)

__all__ = [
    "_local_http_server",
    "_local_https_server",
    "local_http",
    "local_https",
    "tls_ca",
    "tls_ca_file",
]


@pytest_asyncio.fixture(loop_scope="session")
async def egress_api(make_api: AppFactory, tls_ca_file: Path) -> Api:
    """The app in dev mode, trusting the test CA, allowed to reach `localhost`."""
    return await make_api(
        mode="dev", private_egress_hosts=frozenset({"localhost"}), egress_ca_file=tls_ca_file
    )


async def sql(api: Api, statement: str, **params: Any) -> list[Any]:
    """Run one statement in its own transaction; returns the rows (if any)."""
    async with api.runtime.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []
