"""Per-IP, per-token and auth-failure limits, and failing open without Redis (foundation §8)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import redis as sync_redis
from redis.asyncio import Redis

from caracal_api.metrics import RATE_LIMIT_BYPASSED, RATE_LIMIT_REJECTIONS
from tests.conftest import Api, AppFactory, assert_envelope
from tests.integration.foundation.harness import (
    bearer,
    clear_of_minute_edge,
    client_as,
    free_port,
    guard_envelopes,
    open_api,
    random_ip,
)


@pytest.fixture(autouse=True)
def _envelopes(monkeypatch: pytest.MonkeyPatch) -> None:
    # foundation §18 items 15 and 16: every error response of these tests is checked.
    guard_envelopes(monkeypatch)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module: these tests only add rows of their own."""
    async with open_api(database_dsn, redis_url) as built:
        yield built


def rejections(limiter: str) -> float:
    return RATE_LIMIT_REJECTIONS.labels(limiter)._value.get()


def bypassed(limiter: str) -> float:
    return RATE_LIMIT_BYPASSED.labels(limiter)._value.get()


def assert_rate_limited(response: httpx.Response) -> None:
    assert_envelope(response, 429, "rate_limited")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60


# foundation §18 item 34
async def test_per_ip_limit(api: Api, make_api: AppFactory) -> None:
    token = (await api.mint("read"))["token"]
    limited = await make_api(api_v1_rate_limit_per_min=3)
    before = rejections("ip")
    await clear_of_minute_edge()
    ip = random_ip()
    async with client_as(limited, ip) as client:
        assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
        assert (await client.get("/v1/zones")).status_code == 401  # anonymous hits count too
        assert (await client.get("/v1/nope", headers=bearer(token))).status_code == 404
        for _ in range(2):
            assert_rate_limited(await client.get("/v1/zones", headers=bearer(token)))
        # Over the limit the answer is 429 before authentication.
        assert_rate_limited(await client.get("/v1/zones"))
        # /health is never limited.
        for _ in range(10):
            response = await client.get("/health")
            assert response.status_code == 200
            assert "retry-after" not in response.headers
    assert rejections("ip") == before + 3
    # Another address has its own budget.
    async with client_as(limited, random_ip()) as client:
        assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
    # The count lives in Redis under the documented key.
    keys = [k async for k in limited.runtime.redis.scan_iter(match=f"api:v1_rl:ip:{ip}:*")]
    assert len(keys) == 1
    assert int(await limited.runtime.redis.get(keys[0])) == 6
    assert 0 < await limited.runtime.redis.ttl(keys[0]) <= 90


# foundation §18 item 34 (limit 0 never touches Redis)
async def test_limit_zero_never_touches_redis(make_api: AppFactory) -> None:
    nowhere = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    api = await make_api(
        redis=nowhere, api_v1_rate_limit_per_min=0, admin_auth_fail_limit_per_min=0
    )
    counters = {name: bypassed(name) for name in ("ip", "token", "auth_fail")}
    before = {name: rejections(name) for name in ("ip", "token", "auth_fail")}
    async with client_as(api, random_ip()) as client:
        for _ in range(5):
            assert (await client.get("/v1/zones", headers=bearer(api.token))).status_code == 200
            assert (await client.get("/v1/zones")).status_code == 401
    assert {name: bypassed(name) for name in counters} == counters
    assert {name: rejections(name) for name in before} == before


# foundation §18 item 35
async def test_per_token_limit_applies_after_auth(api: Api, make_api: AppFactory) -> None:
    first = await api.mint("read", name="first")
    second = await api.mint("read", name="second")
    limited = await make_api(api_v1_rate_limit_per_min=3)
    limited.runtime.limiters.ip.limit = 1000  # the per-IP limit is higher here
    await clear_of_minute_edge()
    before = rejections("token")
    async with client_as(limited, random_ip()) as client:
        # Unauthenticated requests never count against a token.
        for _ in range(5):
            assert (await client.get("/v1/zones")).status_code == 401
            response = await client.get("/v1/zones", headers=bearer(first["token"] + "x"))
            assert response.status_code == 401
        for token in (first["token"], second["token"]):
            for _ in range(3):
                assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
            assert_rate_limited(await client.get("/v1/zones", headers=bearer(token)))
            # A known path or not, the per-token limit answers before routing.
            assert_rate_limited(await client.get("/v1/nope", headers=bearer(token)))
        # Authentication still comes first: a bad token is 401, not 429.
        response = await client.get("/v1/zones", headers=bearer(first["token"][:-1]))
        assert_envelope(response, 401, "invalid_admin_token")
    assert rejections("token") == before + 4
    redis = limited.runtime.redis
    keys = [k async for k in redis.scan_iter(match=f"api:v1_rl:token:{first['id']}:*")]
    assert len(keys) == 1
    assert int(await redis.get(keys[0])) == 5


# foundation §18 item 36
async def test_auth_failure_limit(api: Api, make_api: AppFactory) -> None:
    token = (await api.mint("read"))["token"]
    limited = await make_api(admin_auth_fail_limit_per_min=3)
    await clear_of_minute_edge()
    before = rejections("auth_fail")
    ip = random_ip()
    async with client_as(limited, ip) as client:
        # Valid requests do not count as failures.
        for _ in range(4):
            assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
        failures = [
            await client.get("/v1/zones"),
            await client.get("/v1/zones", headers={"Authorization": "Basic eDp5"}),
            await client.get("/v1/zones", headers=bearer("cat_wrong")),
        ]
        for response in failures:
            assert_envelope(response, 401, "invalid_admin_token")
        for _ in range(3):
            assert_rate_limited(await client.get("/v1/zones", headers=bearer("cat_wrong")))
        assert_rate_limited(await client.get("/v1/nope"))
        # A valid token from the same address still works.
        assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
        assert (await client.get("/v1/nope", headers=bearer(token))).status_code == 404
    assert rejections("auth_fail") == before + 4
    # Another address still gets its 401s.
    async with client_as(limited, random_ip()) as client:
        assert_envelope(await client.get("/v1/zones"), 401, "invalid_admin_token")
    keys = [k async for k in limited.runtime.redis.scan_iter(match=f"api:admin_auth_fail:{ip}:*")]
    assert len(keys) == 1


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test alone, which the test may kill."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not available")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if sync_redis.Redis(port=port, socket_connect_timeout=0.2).ping():
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# foundation §18 item 37
async def test_redis_outage_fails_open(
    api: Api,
    make_api: AppFactory,
    private_redis: tuple[str, subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proc = private_redis
    token = (await api.mint("write"))["token"]
    client_redis = Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
    limited = await make_api(
        redis_url=url,
        redis=client_redis,
        api_v1_rate_limit_per_min=100,
        admin_auth_fail_limit_per_min=100,
    )
    ip = random_ip()
    async with client_as(limited, ip) as client:
        assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
        keys = [k async for k in client_redis.scan_iter(match=f"api:v1_rl:ip:{ip}:*")]
        assert [await client_redis.get(k) for k in keys] == [b"1"]  # Redis was in use
        proc.kill()
        proc.wait()
        before = {name: bypassed(name) for name in ("ip", "token", "auth_fail")}
        caplog.clear()
        caplog.set_level(logging.WARNING, logger="caracal_api.ratelimit")
        started = time.monotonic()
        statuses = [(await client.get("/v1/zones", headers=bearer(token))).status_code]
        # After a failure each limiter skips Redis for 1 s instead of waiting on it again.
        for limiter in (limited.runtime.limiters.ip, limited.runtime.limiters.token):
            assert 0 < limiter.state.skip_until - time.monotonic() <= 1.0
        for i in range(5):
            statuses.append((await client.get("/v1/zones", headers=bearer(token))).status_code)
            created = await client.post(
                "/v1/zones", headers=bearer(token), json={"name": f"fail open {i}"}
            )
            statuses.append(created.status_code)
            statuses.append((await client.get("/v1/zones")).status_code)
        assert statuses == [200] + [200, 201, 401] * 5
        assert time.monotonic() - started < 10
        await asyncio.sleep(1.1)
        assert (await client.get("/v1/zones", headers=bearer(token))).status_code == 200
    for name in ("ip", "token", "auth_fail"):
        assert bypassed(name) > before[name], name
    assert bypassed("ip") >= before["ip"] + 17
    warnings = [
        r
        for r in caplog.records
        if r.name == "caracal_api.ratelimit" and r.levelno == logging.WARNING
    ]
    assert warnings
    # At most one warning per limiter per 10 s.
    per_limiter = [getattr(r, "limiter", None) for r in warnings]
    assert sorted(per_limiter) == sorted(set(per_limiter))
    assert {"ip", "token"} <= set(per_limiter)
