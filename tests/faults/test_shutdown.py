"""Graceful shutdown of a real `caracal-api serve` with requests in flight (foundation §14.6).

SIGTERM: `/ready` answers 503 `draining` at once while every other route keeps being served
for `SHUTDOWN_DRAIN_DELAY_MS`; then the listener closes and in-flight requests get
`SHUTDOWN_GRACE_MS` to finish. A request that finishes in time gets its normal answer and
the process exits 0; one still waiting on a stalled upstream when the grace runs out gets a
503 envelope (never the server's bare 500) and the process exits 1.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ServerProcess
from tests.faults.services import RedisServer
from tests.faults.support import caracal_env, client, created, running, unhandled_errors
from tests.fixtures.http_servers import TOKEN_RESPONSE, LocalServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DRAIN_MS = 1500
GRACE_MS = 2000
SLACK_S = 3.0


async def provider(http: httpx.AsyncClient, endpoint: str) -> str:
    zone = (await created(http, "/v1/zones", {"name": "shutdown"}))["id"]
    config = {"token_endpoint": endpoint, "client_id": "c", "client_secret": "s3cret"}
    body = {"name": "idp", "kind": "oauth2_client_credentials", "config_json": config}
    row = await created(http, f"/v1/zones/{zone}/providers", body)
    return f"/v1/zones/{zone}/providers/{row['id']}/test"


async def terminate_during(
    server: ServerProcess, http: httpx.AsyncClient, in_flight: asyncio.Task[Any]
) -> tuple[int, float, list[tuple[float, str, int, str | None]]]:
    """SIGTERM while `in_flight` runs; poll /ready and a /v1 read until the process ends.

    Returns the exit code, the seconds from SIGTERM to exit and the observations
    (seconds after SIGTERM, path, status, error code).
    """
    assert server.process is not None
    await asyncio.sleep(0.5)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    seen: list[tuple[float, str, int, str | None]] = []
    while server.process.poll() is None and time.monotonic() - sent < 30:
        for path in ("/ready", "/v1/zones?limit=1"):
            try:
                response = await http.get(path, timeout=2)
            except httpx.HTTPError:
                continue
            code = response.json().get("error") if response.status_code >= 400 else None
            seen.append((time.monotonic() - sent, path, response.status_code, code))
        await asyncio.sleep(0.1)
    code = await asyncio.to_thread(server.process.wait, 30)
    return code, time.monotonic() - sent, seen


async def test_shutdown_drains_then_cuts_off_stalled_requests_with_an_envelope(
    scratch_dsn: str, private_redis: RedisServer, local_https: LocalServer, tls_ca_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    local_https.slow_seconds = 30
    local_https.route("POST", "/late", Reply(200, TOKEN_RESPONSE, delay=2.5))
    env = caracal_env(
        scratch_dsn,
        private_redis.url,
        CARACAL_PRIVATE_EGRESS_HOSTS="localhost",
        CARACAL_EGRESS_CA_FILE=str(tls_ca_file),
        SHUTDOWN_DRAIN_DELAY_MS=str(DRAIN_MS),
        SHUTDOWN_GRACE_MS=str(GRACE_MS),
        API_V1_RATE_LIMIT_PER_MIN="0",
        READY_RATE_LIMIT_PER_MIN="0",
    )

    # 1. A request that outlives the grace: 503 envelope, exit code 1.
    with running(env, tmp_path / "stalled") as server:
        async with client(server) as http, client(server) as probe:
            test_path = await provider(http, local_https.url("/slow"))
            stalled = asyncio.create_task(http.post(test_path))
            code, took, seen = await terminate_during(server, probe, stalled)
            response = await stalled
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "service_unavailable"
        assert body["request_id"] == response.headers["x-request-id"]
        assert code == 1
        assert took <= (DRAIN_MS + GRACE_MS) / 1000 + SLACK_S, took
        assert not unhandled_errors(server)
    during_delay = [s for s in seen if s[0] < DRAIN_MS / 1000 - 0.3]
    assert any(s[1] == "/ready" for s in during_delay), seen
    for _at, path, status, error in during_delay:
        if path == "/ready":
            assert (status, error) == (503, "draining")
        else:
            assert status == 200  # still serving while the load balancer notices

    # 2. A request that finishes within the grace: its normal answer, exit code 0.
    with running(env, tmp_path / "clean") as server:
        async with client(server) as http, client(server) as probe:
            test_path = await provider(http, local_https.url("/late"))
            late = asyncio.create_task(http.post(test_path))
            code, took, _seen = await terminate_during(server, probe, late)
            response = await late
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"
        assert code == 0
        assert took <= (DRAIN_MS + GRACE_MS) / 1000 + SLACK_S, took
