"""PostgreSQL switchover to a promoted standby while the API serves (docs/runbooks.md).

The API reaches PostgreSQL through an endpoint (here a TCP proxy standing in for a VIP or
a DNS name) in front of a primary with a streaming standby. The switchover is done the
way failover managers do it: fence the old primary (it stays reachable but read-only),
wait for the standby to replay everything, promote it, re-point the endpoint. The old
primary keeps the API's pooled connections; writes on them fail with SQLSTATE 25006.

The API must answer 503 `database_unavailable` meanwhile (never 500), drop the pooled
connections to the read-only server and carry on against the new primary within seconds,
without a restart; every write acknowledged before the switchover is on the new primary,
and outbox rows written after it are dispatched.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from caracal_api.kit.migrate import upgrade_head
from tests.faults.services import PostgresServer, RedisServer, TcpProxy
from tests.faults.support import (
    caracal_env,
    client,
    created,
    execute,
    fetch,
    running,
    unhandled_errors,
    wait_for,
)
from tests.fixtures import pg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

WRITERS = 4
RECOVERY_BOUND_S = 10.0


async def write_zones(
    http: httpx.AsyncClient, prefix: str, until: asyncio.Event, out: list[tuple[float, int, str]]
) -> None:
    """Create zones until `until` is set; (time, status, id or error code) per request."""
    n = 0
    while not until.is_set():
        n += 1
        response = await http.post("/v1/zones", json={"name": f"{prefix}-{n}"})
        body = response.json()
        out.append(
            (
                time.monotonic(),
                response.status_code,
                body["id"] if response.status_code == 201 else body.get("error", ""),
            )
        )
        await asyncio.sleep(0.01)


async def test_api_follows_a_switchover_to_the_promoted_standby(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    primary = PostgresServer()
    standby = PostgresServer()
    proxy: TcpProxy | None = None
    try:
        primary.initdb().start()
        await pg.create_database(primary.dsn(), "caracal")
        await upgrade_head(primary.dsn("caracal"))
        standby.standby_of(primary).start()
        proxy = TcpProxy(primary.port).start()
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/caracal"
        env = caracal_env(dsn, private_redis.url, API_V1_RATE_LIMIT_PER_MIN="0")

        with running(env, tmp_path) as server:
            assert server.process is not None
            pid = server.process.pid
            async with client(server) as http:
                before: list[tuple[float, int, str]] = []
                stop = asyncio.Event()
                writers = [
                    asyncio.create_task(write_zones(http, f"before{i}", stop, before))
                    for i in range(WRITERS)
                ]
                await asyncio.sleep(1.5)

                # Switchover: fence, catch up, promote, re-point.
                switched = time.monotonic()
                await execute(primary.dsn(), "ALTER SYSTEM SET default_transaction_read_only = on")
                await execute(primary.dsn(), "SELECT pg_reload_conf()")
                await asyncio.sleep(0.3)  # every backend has read the new setting
                lsn = (await fetch(primary.dsn(), "SELECT pg_current_wal_lsn() AS l"))[0]["l"]

                async def caught_up() -> bool:
                    rows = await fetch(
                        standby.dsn(), "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok", lsn
                    )
                    return bool(rows[0]["ok"])

                assert await wait_for(caught_up, 10, 0.05)
                await asyncio.to_thread(standby.promote)
                proxy.target_port = standby.port
                promoted = time.monotonic()

                async def writing_again() -> bool:
                    return any(t > promoted and status == 201 for t, status, _ in before)

                assert await wait_for(writing_again, RECOVERY_BOUND_S, 0.05), before[-5:]
                recovered = min(t for t, s, _ in before if t > promoted and s == 201)
                await asyncio.sleep(2.0)
                stop.set()
                await asyncio.gather(*writers)

                # Only successes and 503 database_unavailable; never a 500.
                for _t, status, detail in before:
                    assert status == 201 or (status, detail) == (503, "database_unavailable"), (
                        status,
                        detail,
                    )
                # Writes reached the fenced primary (pooled connections) and were refused.
                assert any(s == 503 for t, s, _ in before if t > switched), (
                    "no write ever reached the fenced primary"
                )
                settled = [s for t, s, _ in before if t > recovered + 1.0]
                assert settled
                assert all(s == 201 for s in settled), settled

                # Everything acknowledged is on the new primary.
                acknowledged = [detail for _t, s, detail in before if s == 201]
                on_new = await fetch(
                    standby.dsn("caracal"), "SELECT id FROM zones WHERE id = ANY($1)", acknowledged
                )
                assert len(on_new) == len(acknowledged)

                # Outbox rows written after the switchover are dispatched from the new primary.
                zone = (await created(http, "/v1/zones", {"name": "after"}))["id"]
                app = await created(
                    http,
                    f"/v1/zones/{zone}/applications",
                    {"name": "agent", "registration_method": "managed"},
                )
                reveal = await http.get(
                    f"/v1/zones/{zone}/applications/{app['id']}/client-secret",
                    headers={"x-request-id": "after-switchover"},
                )
                assert reveal.status_code == 200, reveal.text

                async def dispatched() -> bool:
                    rows = await fetch(
                        standby.dsn("caracal"),
                        "SELECT dispatched_at IS NOT NULL AS done FROM event_outbox"
                        " WHERE request_id = 'after-switchover'",
                    )
                    return bool(rows) and all(r["done"] for r in rows)

                assert await wait_for(dispatched, 15, 0.1), "outbox stalled after switchover"
                assert (await http.get("/ready")).status_code == 200
            assert server.process.poll() is None
            assert server.process.pid == pid
            assert not unhandled_errors(server)
        print(
            f"\nwrites={len(before)} acknowledged={len(acknowledged)}"
            f" fenced->promoted {promoted - switched:.2f}s,"
            f" promoted->first write {recovered - promoted:.2f}s"
        )
    finally:
        if proxy is not None:
            proxy.close()
        standby.close()
        primary.close()
