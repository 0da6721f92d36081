"""Redis down and back under a real `caracal-api serve` (events.md §3.5, foundation §8).

While the private Redis is gone, writes that enqueue outbox rows (grant revocations over
authority records, audited client-secret reveals) keep succeeding: rate limiters fail open,
the rows wait in PostgreSQL, none turns dead, `/ready` says `redis_unreachable`. When Redis
returns — empty, as after a crash without persistence — every row is delivered to its
stream with its own `outbox_id` and a valid `_sig`, and the audit ingest worker (which finds
its consumer group gone) ingests the reveal events.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.faults.services import RedisServer
from tests.faults.support import (
    caracal_env,
    check_stream,
    client,
    created,
    decode_entries,
    execute,
    fetch,
    outbox_rows,
    running,
    unhandled_errors,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

USERS = 5
RECORDS_PER_USER = 25
REVEALS = 10
REVOKE_STREAM = "caracal.sessions.revoke"
AUDIT_STREAM = "caracal.audit.events"


def metric(text: str, name: str) -> float:
    """Sum of every sample of one metric family in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            sample = line.split(" ")
            if sample[0] == name or sample[0].startswith(name + "{"):
                total += float(sample[-1])
    return total


async def test_writes_continue_while_redis_is_down_and_every_row_is_delivered_after(
    scratch_dsn: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    env = caracal_env(scratch_dsn, private_redis.url, OUTBOX_POLL_MS="100")
    with running(env, tmp_path) as server:
        async with client(server) as http:
            zone = (await created(http, "/v1/zones", {"name": "redis outage"}))["id"]
            base = f"/v1/zones/{zone}"
            app = await created(
                http, f"{base}/applications", {"name": "agent", "registration_method": "managed"}
            )
            provider = await created(
                http,
                f"{base}/providers",
                {"name": "docs", "kind": "bearer_token", "config_json": {"bearer_token": "t"}},
            )
            resource = await created(
                http,
                f"{base}/resources",
                {
                    "name": "docs",
                    "scopes": ["docs:read"],
                    "credential_provider_id": provider["id"],
                    "upstream_url": "https://docs.example.test",
                },
            )
            grants = [
                await created(
                    http,
                    f"{base}/grants",
                    {
                        "application_id": app["id"],
                        "user_id": f"user-{i}",
                        "resource_id": resource["id"],
                        "scopes": ["docs:read"],
                    },
                )
                for i in range(USERS)
            ]
            # Sessions the STS issued to those users (the STS writes these rows).
            await execute(
                scratch_dsn,
                "INSERT INTO authority_records (id, zone_id, session_type, subject_id, status,"
                " expires_at, authenticated_at)"
                " SELECT 'ar-' || u || '-' || g, $1, 'user', 'user-' || u, 'active',"
                " now() + interval '1 hour', now()"
                " FROM generate_series(0, $2 - 1) u, generate_series(1, $3) g",
                zone,
                USERS,
                RECORDS_PER_USER,
            )
            assert (await http.get("/ready")).status_code == 200

            private_redis.stop()

            async def ready_code() -> str | None:
                response = await http.get("/ready")
                return response.json().get("error") if response.status_code != 200 else None

            async def redis_reported_down() -> bool:
                return await ready_code() == "redis_unreachable"

            assert await wait_for(redis_reported_down, 10), "/ready did not report Redis"

            request_ids: list[str] = []
            slowest = 0.0
            for i, grant in enumerate(grants):
                started = time.monotonic()
                response = await http.delete(
                    f"{base}/grants/{grant['id']}", headers={"x-request-id": f"outage-g{i}"}
                )
                slowest = max(slowest, time.monotonic() - started)
                assert response.status_code == 204, response.text
                request_ids.append(f"outage-g{i}")
            for i in range(REVEALS):
                started = time.monotonic()
                response = await http.get(
                    f"{base}/applications/{app['id']}/client-secret",
                    headers={"x-request-id": f"outage-r{i}"},
                )
                slowest = max(slowest, time.monotonic() - started)
                assert response.status_code == 200, response.text
                request_ids.append(f"outage-r{i}")
            for i in range(3):
                await created(http, "/v1/zones", {"name": f"during outage {i}"})
            # Requests do not wait on the missing Redis (limiters give up after 250 ms).
            assert slowest < 2.0, slowest

            expected = USERS * RECORDS_PER_USER + REVEALS
            rows = await outbox_rows(scratch_dsn, "request_id = ANY($1)", request_ids)
            assert len(rows) == expected

            async def dispatcher_noticed() -> bool:
                found = await outbox_rows(
                    scratch_dsn,
                    "request_id = ANY($1) AND last_error LIKE 'redis unavailable%'",
                    request_ids,
                )
                return bool(found)

            assert await wait_for(dispatcher_noticed, 10), "the dispatcher never tried to publish"
            await asyncio.sleep(2.0)  # several paused PING rounds, never a counted claim
            rows = await outbox_rows(scratch_dsn, "request_id = ANY($1)", request_ids)
            assert not any(r["dispatched"] for r in rows)
            assert not any(r["dead"] for r in rows)
            # Each failed publish gave its claim back: an outage never counts as an attempt.
            assert all(r["attempts"] == 0 for r in rows), {r["attempts"] for r in rows}

            metrics_text = (await http.get("/metrics")).text
            assert metric(metrics_text, "caracal_api_rate_limit_bypassed_total") > 0
            assert metric(metrics_text, "caracal_api_outbox_pending_total") >= expected
            assert metric(metrics_text, "caracal_api_outbox_dead_total") == 0
            status = subprocess.run(
                [sys.executable, "-m", "caracal_api", "outbox", "status"],
                env=server.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            figures = json.loads(status.stdout)
            assert figures["pending"] >= expected
            assert figures["dead"] == 0

            private_redis.start()

            async def all_dispatched() -> bool:
                found = await outbox_rows(
                    scratch_dsn, "request_id = ANY($1) AND dispatched_at IS NULL", request_ids
                )
                return not found

            assert await wait_for(all_dispatched, 30, 0.2), "rows still undelivered"

            async def ready_again() -> bool:
                return (await http.get("/ready")).status_code == 200

            assert await wait_for(ready_again, 10)

            rows = await outbox_rows(scratch_dsn, "request_id = ANY($1)", request_ids)
            assert not any(r["dead"] for r in rows)
            by_stream = {
                stream: [r for r in rows if r["stream_name"] == stream]
                for stream in (REVOKE_STREAM, AUDIT_STREAM)
            }
            assert len(by_stream[REVOKE_STREAM]) == USERS * RECORDS_PER_USER
            assert len(by_stream[AUDIT_STREAM]) == REVEALS
            redis = aioredis.from_url(private_redis.url)
            try:
                for stream, stream_rows in by_stream.items():
                    entries = decode_entries(await redis.xrange(stream))
                    check_stream(stream, entries, stream_rows)
            finally:
                await redis.aclose()

            # The ingest worker found its consumer group gone with the old Redis, recreated
            # it and stored every reveal event once.
            event_ids = [
                json.loads(json.loads(r["payload_json"])["data"])["id"]
                for r in by_stream[AUDIT_STREAM]
            ]

            async def ingested() -> bool:
                found = await fetch(
                    scratch_dsn, "SELECT id FROM audit_events WHERE id = ANY($1)", event_ids
                )
                return len(found) == len(event_ids)

            assert await wait_for(ingested, 20, 0.2), "reveal events not ingested after the outage"
        assert server.process is not None
        assert server.process.poll() is None
        assert not unhandled_errors(server)
