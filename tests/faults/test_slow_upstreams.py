"""Slow upstreams: provider token endpoints and discovery that never answer in time.

A real local HTTPS server (trusted through `CARACAL_EGRESS_CA_FILE`, reachable on loopback
because dev mode lists `localhost` in `CARACAL_PRIVATE_EGRESS_HOSTS`) accepts the request
and sleeps past the 15 s outbound budget (objects.md §1.6). The real `caracal-api serve`
must answer each check within that bound with the documented failure — `/test` 200
`unreachable`, create-with-check 422 `provider_check_failed`, discovery 422
`provider_discovery_failed` (two fetches, so twice the budget at most) — and never a 5xx
or a hang. Meanwhile other requests are served as usual: the waits hold no database
connection (the pool is deliberately smaller than the number of stalled calls).

The same for the optional STS (policies.md §6, plain HTTP, 10 s budget): with the STS
stalling, a new policy-set version answers 503 `policy_verification_unavailable`,
activation proceeds (202), simulation reports `sts_simulation_unreachable:…` and
activation status `sts.state: "unreachable"`, each within the budget.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.services import RedisServer
from tests.faults.support import caracal_env, client, created, running, unhandled_errors
from tests.fixtures.http_servers import LocalServer, Recorded, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

EGRESS_BUDGET_S = 15.0
SLACK_S = 3.0
STALLED_TESTS = 4
POOL = 3
# A read that waited for a pooled connection held by a stalled call would take the whole
# DB_POOL_TIMEOUT_MS (2 s) and answer 503; reads that merely share two busy cores stay far
# below this.
READ_BOUND_S = 1.5


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


async def test_slow_provider_endpoints_fail_in_bounded_time_without_stalling_the_api(
    scratch_dsn: str,
    private_redis: RedisServer,
    local_https: LocalServer,
    tls_ca_file: Path,
    tmp_path: Path,
) -> None:
    local_https.slow_seconds = EGRESS_BUDGET_S + 10

    # Discovery fetches these two documents in turn; both stall.
    def stalled(_request: Recorded) -> Reply:
        return Reply(200, {"issuer": local_https.base_url}, delay=local_https.slow_seconds)

    local_https.route("GET", "/.well-known/openid-configuration", stalled)
    local_https.route("GET", "/.well-known/oauth-authorization-server", stalled)
    env = caracal_env(
        scratch_dsn,
        private_redis.url,
        CARACAL_PRIVATE_EGRESS_HOSTS="localhost",
        CARACAL_EGRESS_CA_FILE=str(tls_ca_file),
        API_V1_RATE_LIMIT_PER_MIN="0",
        DB_POOL_MAX=str(POOL),
        DB_POOL_TIMEOUT_MS="2000",
    )
    config = {
        "token_endpoint": local_https.url("/slow"),
        "client_id": "caracal-test",
        "client_secret": "s3cret-value",
    }
    with running(env, tmp_path) as server:
        async with client(server, timeout=3 * EGRESS_BUDGET_S) as http:
            zone = (await created(http, "/v1/zones", {"name": "slow upstreams"}))["id"]
            base = f"/v1/zones/{zone}/providers"
            provider = await created(
                http,
                base,
                {"name": "slow idp", "kind": "oauth2_client_credentials", "config_json": config},
            )

            checks = [
                asyncio.create_task(timed(http.post(f"{base}/{provider['id']}/test")))
                for _ in range(STALLED_TESTS)
            ]
            create_check = asyncio.create_task(
                timed(
                    http.post(
                        base,
                        json={
                            "name": "checked idp",
                            "kind": "oauth2_client_credentials",
                            "config_json": config,
                            "check": True,
                        },
                    )
                )
            )
            discovery = asyncio.create_task(
                timed(http.post(f"{base}/discovery", json={"issuer": local_https.base_url}))
            )

            # Other requests keep being served while every outbound call is stalled.
            latencies: list[float] = []
            statuses: list[int] = []
            while not all(t.done() for t in checks):
                response, elapsed = await timed(http.get("/v1/zones?limit=5"))
                latencies.append(elapsed)
                statuses.append(response.status_code)
                response, elapsed = await timed(http.get(f"{base}/{provider['id']}"))
                latencies.append(elapsed)
                statuses.append(response.status_code)
                await asyncio.sleep(0.05)
            assert set(statuses) == {200}, statuses
            assert len(latencies) > 50
            assert max(latencies) < READ_BOUND_S, max(latencies)
            assert statistics.median(latencies) < 0.25, statistics.median(latencies)

            check_times = []
            for response, elapsed in [await t for t in checks]:
                check_times.append(elapsed)
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["status"] == "unreachable", body
                assert "timed out" in body["detail"], body
                assert EGRESS_BUDGET_S - 1 <= elapsed <= EGRESS_BUDGET_S + SLACK_S, elapsed

            response, elapsed = await create_check
            assert response.status_code == 422, response.text
            assert response.json()["error"] == "provider_check_failed"
            assert response.json()["details"]["check"]["status"] == "unreachable"
            assert elapsed <= EGRESS_BUDGET_S + SLACK_S, elapsed

            response, discovery_time = await discovery
            assert response.status_code == 422, response.text
            assert response.json()["error"] == "provider_discovery_failed"
            assert discovery_time <= 2 * EGRESS_BUDGET_S + SLACK_S, discovery_time

            # The failed check is recorded on the provider; nothing was created by the
            # failed create-with-check.
            stored = (await http.get(f"{base}/{provider['id']}")).json()
            assert stored["connectivity_failed_at"] is not None
            names = [p["name"] for p in (await http.get(base)).json()["items"]]
            assert names == ["slow idp"]
        assert server.process is not None
        assert server.process.poll() is None
        assert not unhandled_errors(server)
    print(
        f"\n/test answered in {min(check_times):.1f}..{max(check_times):.1f}s,"
        f" create-with-check in {elapsed:.1f}s, discovery in {discovery_time:.1f}s;"
        f" {len(latencies)} concurrent reads, slowest {max(latencies) * 1000:.0f} ms"
    )


POLICY = (
    '# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\napp_ids := {"a": "b"}\n'
)
STS_BUDGET_S = 10.0


async def test_slow_sts_bounds_policy_set_routes_without_stalling_the_api(
    scratch_dsn: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    """policies.md §6: every STS call gives up after 10 s with the documented outcome."""
    sts = LocalServer(None).start()
    stall = {"on": False}

    def simulate(request: Recorded) -> Reply:
        body = json.loads(request.body)
        reply = {
            "policy_set_id": body["policy_set_id"],
            "version_id": body["version_id"],
            "manifest_sha256": body["manifest_sha256"],
            "result": {
                "decision": "deny",
                "evaluation_status": "complete",
                "determining_policies": [],
                "diagnostics": [],
            },
        }
        return Reply(200, reply, delay=STS_BUDGET_S + 8 if stall["on"] else 0.0)

    sts.route("POST", "/internal/policy/simulate", simulate)
    env = caracal_env(
        scratch_dsn,
        private_redis.url,
        STS_URL=sts.base_url,
        GATEWAY_STS_HMAC_KEY=secrets.token_hex(32),
        API_V1_RATE_LIMIT_PER_MIN="0",
        DB_POOL_MAX=str(POOL),
        DB_POOL_TIMEOUT_MS="2000",
    )
    try:
        with running(env, tmp_path) as server:
            async with client(server, timeout=3 * STS_BUDGET_S) as http:
                zone = (await created(http, "/v1/zones", {"name": "slow sts"}))["id"]
                base = f"/v1/zones/{zone}"
                sts.route(
                    "GET",
                    f"/internal/policy/status/{zone}",
                    Reply(200, {"zone_id": zone, "loaded": False}, delay=STS_BUDGET_S + 8),
                )
                policy = await created(http, f"{base}/policies", {"name": "p", "content": POLICY})
                policy_set = await created(http, f"{base}/policy-sets", {"name": "s"})
                sets = f"{base}/policy-sets/{policy_set['id']}"
                manifest = {"manifest": [{"policy_version_id": policy["version_id"]}]}
                version = await created(http, f"{sets}/versions", manifest)

                stall["on"] = True
                new_version = asyncio.create_task(
                    timed(http.post(f"{sets}/versions", json=manifest))
                )
                activation = asyncio.create_task(
                    timed(http.post(f"{sets}/activate", json={"version_id": version["id"]}))
                )
                simulation = asyncio.create_task(
                    timed(
                        http.post(
                            f"{sets}/simulate",
                            json={
                                "version_id": version["id"],
                                "input": {
                                    "principal": {"zone_id": zone},
                                    "resource": {},
                                    "action": {},
                                    "context": {},
                                },
                            },
                        )
                    )
                )
                latencies: list[float] = []
                status = asyncio.create_task(
                    timed(http.get(f"{sets}/activation-status?version_id={version['id']}"))
                )
                waiting = [new_version, activation, simulation, status]
                while not all(t.done() for t in waiting):
                    response, elapsed = await timed(http.get(f"{base}/policy-sets"))
                    assert response.status_code == 200, response.text
                    latencies.append(elapsed)
                    await asyncio.sleep(0.05)

                response, new_version_time = await new_version
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "policy_verification_unavailable"
                response, activation_time = await activation
                assert response.status_code == 202, response.text
                response, simulation_time = await simulation
                assert response.status_code == 200, response.text
                warnings = response.json()["warnings"]
                assert any(w.startswith("sts_simulation_unreachable:") for w in warnings)
                assert response.json()["explanation"]["sts"]["evaluation"] == "failed"
                response, status_time = await status
                assert response.status_code == 200, response.text
                assert response.json()["sts"]["state"] == "unreachable"
                assert response.json()["propagation_status"] in (
                    "waiting_for_activation",
                    "waiting_for_outbox",
                    "waiting_for_sts",
                )
                for took in (new_version_time, simulation_time, status_time):
                    assert STS_BUDGET_S - 1 <= took <= STS_BUDGET_S + SLACK_S, took
                # Activation verifies the bundle on the STS before committing.
                assert activation_time <= STS_BUDGET_S + SLACK_S, activation_time
                assert latencies
                assert max(latencies) < READ_BOUND_S, max(latencies)
            assert statistics.median(latencies) < 0.25, statistics.median(latencies)
            assert server.process is not None
            assert server.process.poll() is None
            assert not unhandled_errors(server)
    finally:
        sts.stop()
    print(
        f"\nSTS stalled: new version {new_version_time:.1f}s, activate {activation_time:.1f}s,"
        f" simulate {simulation_time:.1f}s, status {status_time:.1f}s;"
        f" slowest concurrent read {max(latencies) * 1000:.0f} ms"
    )
