"""Routes outside /v1: health, readiness, metrics, docs (foundation §14.1–§14.4)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy import event

from caracal_api.app import create_app
from caracal_api.embedded import redis_store
from caracal_api.kit.ids import uuid7
from caracal_api.runtime import Runtime
from tests.conftest import Api, AppFactory, assert_envelope, base_settings
from tests.integration.foundation.support import execute, free_port, scalar

# Dead rows other tests may have left are not what these tests are about.
NO_DEAD_LIMIT = 10**9


@asynccontextmanager
async def app_on(
    dsn: str, redis: Redis, *, embedded: bool = False, **overrides: Any
) -> AsyncIterator[Api]:
    """An app whose runtime points wherever the test says (no lifespan, no seeding)."""
    settings = base_settings(dsn, "redis://unused", **overrides)
    runtime = Runtime.build(
        settings, dsn, redis, embedded_postgres=embedded, embedded_redis=embedded
    )
    runtime.run_dispatcher = runtime.run_audit_ingest = embedded
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://caracal.test") as c:
            yield Api(c, app, runtime)
    finally:
        await runtime.close()


def dead_dsn() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"


# --- item 51 ---------------------------------------------------------------------------------


# foundation §18 item 51
async def test_health_needs_no_credentials(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "x" * 5000},
    ):
        response = await api.client.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"ok": True}
        assert response.headers["content-type"].startswith("application/json")
    api.runtime.draining = True
    try:
        assert (await api.client.get("/health")).json() == {"ok": True}
    finally:
        api.runtime.draining = False


# foundation §18 items 51, 52: PostgreSQL refusing connections
async def test_database_down(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    async with app_on(dead_dsn(), redis) as api:
        response = await api.client.get("/health", headers={"Authorization": "Bearer garbage"})
        assert (response.status_code, response.json()) == (200, {"ok": True})
        started = time.monotonic()
        response = await api.client.get("/ready")
        assert time.monotonic() - started < 6
        body = assert_envelope(response, 503, "postgres_unreachable")
        assert body["ok"] is False
        assert body["dependency"] == "postgres"
        # /v1 answers 503 too, never 401 or 5xx of another kind.
        response = await api.get("/v1/zones")
        assert_envelope(response, 503, "database_unavailable")


async def _silent_server() -> tuple[asyncio.AbstractServer, int]:
    """Accepts TCP connections and never answers (a black-holed database)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


# foundation §18 item 52: an unresponsive PostgreSQL is reported within ~5 s
@pytest.mark.slow
async def test_database_unresponsive_within_five_seconds(redis_url: str) -> None:
    server, port = await _silent_server()
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        async with app_on(f"postgresql://postgres@127.0.0.1:{port}/x", redis) as api:
            started = time.monotonic()
            response = await api.client.get("/ready")
            elapsed = time.monotonic() - started
            assert_envelope(response, 503, "postgres_unreachable")
            assert 4.0 <= elapsed < 7.0, elapsed
    finally:
        server.close()


# --- item 52 ---------------------------------------------------------------------------------


# foundation §18 item 52
async def test_ready_external(make_api: AppFactory) -> None:
    api = await make_api(api_ready_outbox_dead_max=NO_DEAD_LIMIT)
    response = await api.client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "postgres": "external",
        "redis": "external",
        "workers": {"dispatcher": False, "audit_ingest": False},
    }


# foundation §18 item 52: embedded mode (in-process stream store)
async def test_ready_embedded(database_dsn: str) -> None:
    async with app_on(
        database_dsn, redis_store.create(), embedded=True, api_ready_outbox_dead_max=NO_DEAD_LIMIT
    ) as api:
        response = await api.client.get("/ready")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "ok": True,
            "postgres": "embedded",
            "redis": "embedded",
            "workers": {"dispatcher": True, "audit_ingest": True},
        }


# foundation §18 item 52: a real zero-configuration `serve` (embedded PostgreSQL and store)
@pytest.mark.slow
async def test_ready_in_embedded_mode(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARACAL_", "DATABASE_", "REDIS_", "AUDIT_", "STREAMS_", "SECRET_"))
    }
    env.update(CARACAL_DATA_DIR=str(tmp_path / "data"), HOST="127.0.0.1", PORT=str(port))
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "caracal-api"),
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    response = await client.get("/ready")
                    break
                except httpx.TransportError:
                    assert proc.returncode is None, "serve exited"
                    assert time.monotonic() < deadline, "serve did not start"
                    await asyncio.sleep(0.25)
            assert response.status_code == 200, response.text
            assert response.json() == {
                "ok": True,
                "postgres": "embedded",
                "redis": "embedded",
                "workers": {"dispatcher": True, "audit_ingest": True},
            }
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0


# foundation §18 item 52
async def test_ready_redis_down(make_api: AppFactory) -> None:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe = Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if await probe.ping():
                    break
            except Exception:
                await asyncio.sleep(0.05)
        await probe.aclose()
        own = Redis.from_url(
            f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1, socket_timeout=2
        )
        api = await make_api(redis=own, api_ready_outbox_dead_max=NO_DEAD_LIMIT)
        assert (await api.client.get("/ready")).status_code == 200
        proc.kill()
        proc.wait(10)
        started = time.monotonic()
        response = await api.client.get("/ready")
        assert time.monotonic() - started < 6
        body = assert_envelope(response, 503, "redis_unreachable")
        assert (body["ok"], body["dependency"]) == (False, "redis")
        # The API itself keeps working without Redis.
        assert (await api.get("/v1/zones?limit=1")).status_code == 200
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# foundation §18 item 52
async def test_ready_dead_outbox_row(api: Api) -> None:
    # Park dead rows other tests left behind, so the count is exactly ours.
    parked = await scalar(
        api,
        "WITH p AS (UPDATE event_outbox SET available_at = now() + interval '100 years'"
        " WHERE dispatched_at IS NULL AND available_at = 'infinity' RETURNING id)"
        " SELECT coalesce(array_agg(id), '{}') FROM p",
    )
    dead_id = uuid7()
    try:
        await execute(
            api,
            "INSERT INTO event_outbox (id, stream_name, payload_json, attempts, available_at,"
            " last_error) VALUES (:id, 'caracal.test.dead', '{}'::jsonb, 100, 'infinity',"
            " 'gave up')",
            id=dead_id,
        )
        response = await api.client.get("/ready")
        body = assert_envelope(response, 503, "outbox_dead_messages")
        assert body["ok"] is False
        assert body["deadCount"] == 1
        assert body["limit"] == 0
        assert isinstance(body["deadCount"], int)
    finally:
        await execute(api, "DELETE FROM event_outbox WHERE id = :id", id=dead_id)
        await execute(
            api,
            "UPDATE event_outbox SET available_at = 'infinity' WHERE id = ANY(:ids)",
            ids=list(parked),
        )


# foundation §18 item 52
async def test_ready_draining(api: Api) -> None:
    api.runtime.draining = True
    try:
        body = assert_envelope(await api.client.get("/ready"), 503, "draining")
        assert (body["ok"], body["draining"]) == (False, True)
    finally:
        api.runtime.draining = False


# foundation §18 item 52: the /ready limiter answers before any dependency is touched
async def test_ready_rate_limit_touches_no_database(make_api: AppFactory) -> None:
    api = await make_api(
        ready_rate_limit_per_min=2, trust_proxy=1, api_ready_outbox_dead_max=NO_DEAD_LIMIT
    )
    client = f"198.51.100.{random.randint(1, 254)}"
    ip = {"X-Forwarded-For": f"10.9.9.9, {client}"}
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(api.runtime.engine.sync_engine, "before_cursor_execute", seen)
    try:
        for _ in range(2):
            assert (await api.client.get("/ready", headers=ip)).status_code == 200
        assert statements  # the checks did query
        statements.clear()
        response = await api.client.get("/ready", headers=ip)
        body = assert_envelope(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
        assert body["request_id"]
        assert statements == []
        # Another client IP has its own budget.
        other = {"X-Forwarded-For": "192.0.2.77"}
        assert (await api.client.get("/ready", headers=other)).status_code == 200
    finally:
        event.remove(api.runtime.engine.sync_engine, "before_cursor_execute", seen)


# --- item 53 ---------------------------------------------------------------------------------

OUTBOX_GAUGES = (
    "caracal_api_outbox_pending_total",
    "caracal_api_outbox_dead_total",
    "caracal_api_outbox_oldest_pending_age_seconds",
    "caracal_api_outbox_oldest_dead_age_seconds",
)


# foundation §18 item 53
async def test_metrics_exposition(api: Api) -> None:
    zone = await api.zone()
    assert (await api.get(f"/v1/zones/{zone['id']}")).status_code == 200
    assert (await api.get("/v1/zones/missing-zone/dcr-status")).status_code == 404
    assert (await api.get("/v1/nowhere/at/all")).status_code == 404
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in OUTBOX_GAUGES:
        assert families[name].type == "gauge", name
        assert f"# TYPE {name} gauge" in text
        values = [s.value for s in families[name].samples]
        assert values
        assert all(v >= 0 for v in values), (name, values)
    assert families["caracal_api_outbox_health_up"].samples[0].value == 1
    for name in ("caracal_secret_backend_operations_total", "caracal_secret_backend_errors_total"):
        assert f"# TYPE {name} counter" in text
        assert f"# HELP {name} " in text
        assert families[name.removesuffix("_total")].type == "counter"
    assert "# TYPE caracal_api_admin_audit_unchained gauge" in text
    assert "# TYPE caracal_api_http_request_duration_seconds histogram" in text
    assert not re.search(r"^\w+_created[{ ]", text, re.MULTILINE)

    durations = families["caracal_api_http_request_duration_seconds"].samples
    routes = {s.labels["route"] for s in durations}
    assert "/v1/zones/{id}" in routes
    assert "/v1/zones/{id}/dcr-status" in routes
    assert "unmatched" in routes
    assert not any(zone["id"] in r or "missing-zone" in r for r in routes)
    count = [
        s
        for s in durations
        if s.name.endswith("_count")
        and s.labels == {"method": "GET", "route": "/v1/zones/{id}", "status": "200"}
    ]
    assert count
    assert count[0].value >= 1
    requests = families["caracal_api_http_requests"].samples
    assert any(s.labels.get("route") == "/v1/zones/{id}/dcr-status" for s in requests)


# foundation §18 item 53: the outbox gauges follow the outbox at scrape time
async def test_metrics_outbox_gauges_track_dead_rows(api: Api) -> None:
    dead_id = uuid7()
    await execute(
        api,
        "INSERT INTO event_outbox (id, stream_name, payload_json, available_at, created_at)"
        " VALUES (:id, 'caracal.test.dead', '{}'::jsonb, 'infinity', now() - interval '1 hour')",
        id=dead_id,
    )
    try:
        text = (await api.client.get("/metrics")).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["caracal_api_outbox_dead_total"].samples[0].value >= 1
        assert families["caracal_api_outbox_oldest_dead_age_seconds"].samples[0].value >= 3599
    finally:
        await execute(api, "DELETE FROM event_outbox WHERE id = :id", id=dead_id)


# foundation §18 item 53
async def test_metrics_bearer(make_api: AppFactory) -> None:
    api = await make_api(metrics_bearer="metrics-secret-value")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer metrics-secret-valuE"},
        {"Authorization": "bearer metrics-secret-value"},
        {"Authorization": "Bearer metrics-secret-value "},
    ):
        response = await api.client.get("/metrics", headers=headers)
        assert_envelope(response, 401, "unauthorized")
    response = await api.client.get(
        "/metrics", headers={"Authorization": "Bearer metrics-secret-value"}
    )
    assert response.status_code == 200
    assert "caracal_api_http_requests_total" in response.text


# foundation §18 item 53
async def test_metrics_closed_in_production_without_bearer(
    redis_url: str, database_dsn: str
) -> None:
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    async with app_on(database_dsn, redis, mode="production", metrics_bearer=None) as api:
        response = await api.client.get("/metrics")
        assert_envelope(response, 401, "unauthorized")
        response = await api.client.get("/metrics", headers={"Authorization": "Bearer x"})
        assert_envelope(response, 401, "unauthorized")


# foundation §18 item 53: a scrape never fails because a dependency is down
async def test_metrics_with_database_down(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    async with app_on(dead_dsn(), redis) as api:
        response = await api.client.get("/metrics")
        assert response.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["caracal_api_outbox_health_up"].samples[0].value == 0


# --- item 54 ---------------------------------------------------------------------------------


# foundation §18 item 54
async def test_docs_disabled(make_api: AppFactory) -> None:
    api = await make_api(api_enable_docs=False)
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert_envelope(await api.client.get(path), 404, "not_found")


# foundation §18 item 54
async def test_docs_served_locally(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "http://" not in page
    assert "https://" not in page
    assert "//" not in page.replace("<!doctype", "")
    references = re.findall(r'(?:src|href|url)\s*[=:]\s*"([^"]+)"', page)
    assert references
    for ref in references:
        assert ref.startswith("/"), ref
        assert not ref.startswith("//"), ref
        asset = await api.client.get(ref)
        assert asset.status_code == 200, ref
    document = (await api.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/zones" in document["paths"]
    assert "/v1/zones/{id}" in document["paths"]
