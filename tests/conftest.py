"""Shared fixtures: a migrated PostgreSQL database per run, real Redis, the app in-process.

Outside CI a missing PostgreSQL or Redis skips the tests that need it; with `CI=true` it
fails the run instead, so a broken environment can never pass silently.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from caracal_api.config import Settings
from tests.fixtures import pg

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_URL = os.environ.get("CARACAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BOOTSTRAP_TOKEN = "cat_bootstrap-" + secrets.token_hex(16)
AUDIT_KEY = bytes(range(100, 132))
STREAMS_KEY = bytes(range(50, 82))
KEK = bytes.fromhex("9f2c1a7be44d0c3812aa56f0e7d9b3c4a1f0e2d3c4b5a69788796a5b4c3d2e1f")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(f"service unavailable: {reason}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_dsn() -> AsyncIterator[str]:
    """A freshly migrated database for this test run (per xdist worker)."""
    admin = pg.admin_dsn()
    reason = await pg.server_unreachable(admin)
    if reason is not None:
        unavailable(f"PostgreSQL: {reason}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"caracal_test_{os.getpid()}_{worker}"
    dsn = await pg.create_migrated_database(admin, name)
    yield dsn
    await pg.drop_database(admin, name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_url() -> AsyncIterator[str]:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
        await client.flushdb()
    except Exception as exc:
        unavailable(f"Redis: {type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    yield REDIS_URL


def base_settings(database_dsn: str, redis_url: str, /, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_dsn,
        "redis_url": redis_url,
        "admin_token": BOOTSTRAP_TOKEN,
        "secret_store_kek": KEK,
        "audit_hmac_key": AUDIT_KEY,
        "streams_hmac_key": STREAMS_KEY,
        "api_v1_rate_limit_per_min": 0,
        "admin_auth_fail_limit_per_min": 0,
        "ready_rate_limit_per_min": 0,
        "policy_validate_rate_limit_per_min": 0,
        "db_pool_max": 10,
        "worker_id": f"test:{os.getpid()}",
    }
    values.update(overrides)
    return dataclasses.replace(Settings(), **values)


class Api:
    """An httpx client bound to the in-process app, with token helpers."""

    def __init__(self, client: httpx.AsyncClient, app: Any, runtime: Any) -> None:
        self.client = client
        self.app = app
        self.runtime = runtime
        self.token = BOOTSTRAP_TOKEN

    def _headers(self, token: str | None, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        chosen = self.token if token is None else token
        if chosen:
            out.setdefault("Authorization", f"Bearer {chosen}")
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return await self.client.request(
            method, path, headers=self._headers(token, headers), **kwargs
        )

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def mint(
        self, capability: str = "write", zone: str | None = None, name: str = "t"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "scope": "zone" if zone else "global",
            "capability": capability,
        }
        if zone:
            body["zone_id"] = zone
        response = await self.post("/v1/admin-tokens", json=body, token=BOOTSTRAP_TOKEN)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def zone(self, name: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {"name": name or f"zone {secrets.token_hex(4)}", **extra}
        response = await self.post("/v1/zones", json=body, token=BOOTSTRAP_TOKEN)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]


AppFactory = Callable[..., Awaitable[Api]]


@pytest_asyncio.fixture(loop_scope="session")
async def make_api(database_dsn: str, redis_url: str) -> AsyncIterator[AppFactory]:
    """Build an in-process app with settings overrides; torn down after the test."""
    from contextlib import AsyncExitStack

    from caracal_api.admin_tokens.service import seed_bootstrap
    from caracal_api.app import create_app
    from caracal_api.runtime import Runtime

    stack = AsyncExitStack()

    async def build(*, workers: bool = False, redis: Redis | None = None, **overrides: Any) -> Api:
        settings = base_settings(database_dsn, redis_url, **overrides)
        client_redis = redis or Redis.from_url(
            settings.redis_url or redis_url, socket_connect_timeout=1, socket_timeout=2
        )
        runtime = Runtime.build(
            settings, database_dsn, client_redis, embedded_postgres=False, embedded_redis=False
        )
        runtime.run_dispatcher = runtime.run_audit_ingest = workers
        await seed_bootstrap(runtime.engine, settings.admin_token)
        app = create_app(runtime)
        await stack.enter_async_context(app.app.router.lifespan_context(app.app))
        stack.push_async_callback(runtime.close)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://caracal.test")
        stack.push_async_callback(client.aclose)
        return Api(client, app, runtime)

    yield build
    await stack.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def api(make_api: AppFactory) -> Api:
    """The default in-process app: no workers, limits off."""
    return await make_api()


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body  # type: ignore[no-any-return]
