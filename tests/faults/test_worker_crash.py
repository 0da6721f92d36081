"""Dispatcher and audit-ingest processes killed mid-work (events.md §3.5, §6).

The API runs as `caracal-api serve --no-workers`; two `caracal-api dispatcher` processes
drain a backlog of several thousand outbox rows (one grant revocation over thousands of
authority records, plus audited reveals) and `caracal-api audit-ingest` drains a backlog
of signed audit events (the reveals and events other producers appended). Workers are
SIGKILLed in the middle and restarted (one ingest replica under a new consumer name, so
its reaper has to take over the dead consumer's pending entries). Afterwards:

- every outbox row is dispatched (none dead) and on its stream with the exact fields and a
  valid `_sig`; a message seen twice is the same row again (equal `outbox_id`, equal
  fields);
- every audit event is stored exactly once in `audit_events`, each zone's chain is
  contiguous and linked, nothing is pending in the consumer group and nothing went to the
  DLQ.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.e2e.harness import ServerProcess
from tests.faults.services import RedisServer
from tests.faults.support import (
    AUDIT_KEY,
    caracal_env,
    check_stream,
    client,
    created,
    decode_entries,
    execute,
    fetch,
    kill,
    outbox_rows,
    running,
    unhandled_errors,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REVOKED_SESSIONS = 4000
REVEALS = 50
FOREIGN_EVENTS = 900  # appended by other producers (STS, gateway) straight to the stream
AUDIT_STREAM = "caracal.audit.events"
REVOKE_STREAM = "caracal.sessions.revoke"
GROUP = "audit-ingestor"

DISPATCHER_ENV = {"OUTBOX_BATCH_SIZE": "10", "OUTBOX_LOCK_SEC": "3", "OUTBOX_POLL_MS": "50"}
INGEST_ENV = {"AUDIT_INGEST_CLAIM_IDLE_SEC": "1"}


def foreign_event(zone_id: str, n: int) -> dict[str, str]:
    """An audit-stream message as another Caracal component writes it (events.md §5)."""
    data = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "zone_id": zone_id,
            "event_type": "token_issued",
            "request_id": f"sts-{n}",
            "decision": "allow",
            "evaluation_status": "complete",
            "determining_policies_json": [],
            "diagnostics_json": [],
            "metadata_json": {"n": n},
            "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
        separators=(",", ":"),
    )
    sig = hmac.new(AUDIT_KEY, data.encode(), hashlib.sha256).hexdigest()
    return {"id": f"sts-{n}", "data": data, "sig": sig}


class Progress:
    """Counts read on one connection, for deciding when to kill a worker."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def dispatched(self) -> int:
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM event_outbox WHERE dispatched_at IS NOT NULL"
            )
        )

    async def ingested(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM audit_events"))


async def reach(count: Callable[[], Awaitable[int]], target: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        value = await count()
        if value >= target or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


def worker(env: dict[str, str], workdir: Path, command: str, worker_id: str) -> ServerProcess:
    extra = DISPATCHER_ENV if command == "dispatcher" else INGEST_ENV
    return ServerProcess({**env, **extra, "WORKER_ID": worker_id}, workdir, args=(command,)).start()


async def test_killed_workers_lose_nothing_and_store_audit_events_once(
    scratch_dsn: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    env = caracal_env(scratch_dsn, private_redis.url)
    redis = aioredis.from_url(private_redis.url)
    workers: list[ServerProcess] = []
    conn = await asyncpg.connect(scratch_dsn)
    progress = Progress(conn)
    try:
        with running(env, tmp_path, "serve", "--no-workers") as api:
            async with client(api) as http:
                zones = [
                    (await created(http, "/v1/zones", {"name": f"crash {i}"}))["id"]
                    for i in range(3)
                ]
                base = f"/v1/zones/{zones[0]}"
                app = await created(
                    http,
                    f"{base}/applications",
                    {"name": "agent", "registration_method": "managed"},
                )
                provider = await created(
                    http,
                    f"{base}/providers",
                    {"name": "p", "kind": "bearer_token", "config_json": {"bearer_token": "t"}},
                )
                resource = await created(
                    http,
                    f"{base}/resources",
                    {
                        "name": "r",
                        "scopes": ["docs:read"],
                        "credential_provider_id": provider["id"],
                        "upstream_url": "https://docs.example.test",
                    },
                )
                grant = await created(
                    http,
                    f"{base}/grants",
                    {
                        "application_id": app["id"],
                        "user_id": "bulk-user",
                        "resource_id": resource["id"],
                        "scopes": ["docs:read"],
                    },
                )
                await execute(
                    scratch_dsn,
                    "INSERT INTO authority_records (id, zone_id, session_type, subject_id,"
                    " status, expires_at, authenticated_at)"
                    " SELECT 'ar-bulk-' || g, $1, 'user', 'bulk-user', 'active',"
                    " now() + interval '1 hour', now() FROM generate_series(1, $2) g",
                    zones[0],
                    REVOKED_SESSIONS,
                )
                revoke = await http.delete(f"{base}/grants/{grant['id']}")
                assert revoke.status_code == 204, revoke.text
                reveals = await asyncio.gather(
                    *(
                        http.get(f"{base}/applications/{app['id']}/client-secret")
                        for _ in range(REVEALS)
                    )
                )
                assert all(r.status_code == 200 for r in reveals)

            rows = await outbox_rows(scratch_dsn)
            assert len(rows) == REVOKED_SESSIONS + REVEALS
            pipe = redis.pipeline(transaction=False)
            for n in range(FOREIGN_EVENTS):
                pipe.xadd(AUDIT_STREAM, foreign_event(zones[n % 3], n))  # type: ignore[arg-type]
            await pipe.execute()
            expected_events = FOREIGN_EVENTS + REVEALS
            total_rows = len(rows)

            # --- dispatchers: two replicas, both killed mid-drain, then restarted --------
            started = time.monotonic()
            workers.append(worker(env, tmp_path, "dispatcher", "disp-a"))
            workers.append(worker(env, tmp_path, "dispatcher", "disp-b"))
            workers.append(worker(env, tmp_path, "audit-ingest", "ingest-a"))
            first_kill = await reach(progress.dispatched, total_rows // 10, 60)
            kill(workers[0])
            assert first_kill < total_rows, "the backlog drained before the first kill"
            second_kill = await reach(progress.dispatched, total_rows // 2, 60)
            kill(workers[1])
            assert second_kill < total_rows, "the backlog drained before the second kill"

            ingest_kill = await reach(progress.ingested, expected_events // 10, 60)
            kill(workers[2])
            assert ingest_kill < expected_events, "the audit backlog drained before the kill"
            orphaned = sum(
                int(c["pending"])
                for c in await redis.xinfo_consumers(AUDIT_STREAM, GROUP)
                if c["name"] == b"ingest-a"
            )

            workers.append(worker(env, tmp_path, "dispatcher", "disp-a"))
            workers.append(worker(env, tmp_path, "dispatcher", "disp-c"))
            # A new consumer name: the dead consumer's pending entries are only reachable
            # through the reaper (XAUTOCLAIM).
            workers.append(worker(env, tmp_path, "audit-ingest", "ingest-b"))

            async def drained() -> bool:
                return (
                    await progress.dispatched() == total_rows
                    and await progress.ingested() >= expected_events
                )

            assert await wait_for(drained, 90, 0.2), (
                await progress.dispatched(),
                await progress.ingested(),
            )

            async def nothing_pending() -> bool:
                summary = await redis.xpending(AUDIT_STREAM, GROUP)
                return int(summary["pending"]) == 0

            assert await wait_for(nothing_pending, 15, 0.2), await redis.xpending(
                AUDIT_STREAM, GROUP
            )
            elapsed = time.monotonic() - started
            assert not unhandled_errors(api)
            for process in workers:
                if process.process is not None and process.process.poll() is None:
                    assert process.stop(timeout=20) == 0, process.stderr()[-2000:]

        # --- outbox: every row delivered, duplicates only of the same row ---------------
        rows = await outbox_rows(scratch_dsn)
        assert all(r["dispatched"] for r in rows)
        assert not any(r["dead"] for r in rows)
        revoke_rows = [r for r in rows if r["stream_name"] == REVOKE_STREAM]
        audit_rows = [r for r in rows if r["stream_name"] == AUDIT_STREAM]
        revoke_stats = check_stream(
            REVOKE_STREAM, decode_entries(await redis.xrange(REVOKE_STREAM)), revoke_rows
        )
        audit_entries = decode_entries(await redis.xrange(AUDIT_STREAM))
        audit_stats = check_stream(
            AUDIT_STREAM, [e for e in audit_entries if "outbox_id" in e], audit_rows
        )
        redelivered = await fetch(
            scratch_dsn, "SELECT count(*) AS n FROM event_outbox WHERE attempts > 1"
        )

        # --- audit events: exactly once, chains intact, nothing refused -----------------
        wanted_ids = {json.loads(e["data"])["id"] for e in audit_entries}
        assert len(wanted_ids) == expected_events
        stored = await fetch(scratch_dsn, "SELECT id, zone_id FROM audit_events")
        assert len(stored) == expected_events
        assert {r["id"] for r in stored} == wanted_ids
        chains = await fetch(
            scratch_dsn,
            "SELECT zone_id, chain_seq, content_sha256, prev_content_sha256 FROM audit_events"
            " ORDER BY zone_id, chain_seq",
        )
        by_zone: dict[str, list[asyncpg.Record]] = {}
        for row in chains:
            by_zone.setdefault(row["zone_id"], []).append(row)
        for zone_id, chain in by_zone.items():
            assert [r["chain_seq"] for r in chain] == list(range(1, len(chain) + 1)), zone_id
            for prev, row in itertools.pairwise(chain):
                assert row["prev_content_sha256"] == prev["content_sha256"], zone_id
        assert await redis.xlen("caracal.audit.events.dlq") == 0
        consumers = {c["name"].decode() for c in await redis.xinfo_consumers(AUDIT_STREAM, GROUP)}
        assert consumers >= {"ingest-b"}
        print(
            f"\nrows={total_rows} killed at {first_kill}/{second_kill} dispatched;"
            f" ingest killed at {ingest_kill}/{expected_events} with {orphaned} pending;"
            f" stream duplicates revoke={revoke_stats['duplicates']}"
            f" audit={audit_stats['duplicates']}; re-claimed rows={redelivered[0]['n']};"
            f" recovered in {elapsed:.1f}s"
        )
    finally:
        for process in workers:
            if process.process is not None and process.process.poll() is None:
                process.process.kill()
                process.process.wait(10)
        await conn.close()
        await redis.aclose()


async def test_audit_rows_a_crashed_api_left_unchained_are_chained_by_the_dispatcher(
    scratch_dsn: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    """foundation §13.5: processes that run the dispatcher sweep unchained rows every second.

    In the split deployment the API (`serve --no-workers`) chains its rows right after
    commit; when it dies first (here: its chainer waits on the chain lock when it is
    SIGKILLed) only the standalone `caracal-api dispatcher` is left to chain them.
    """
    env = caracal_env(scratch_dsn, private_redis.url)
    lock = await asyncpg.connect(scratch_dsn)
    sweeper: ServerProcess | None = None
    try:
        with running(env, tmp_path / "api", "serve", "--no-workers") as api:
            async with client(api) as http:
                zone = (await created(http, "/v1/zones", {"name": "crash before chaining"}))["id"]

                async def zone_chained() -> bool:
                    rows = await fetch(
                        scratch_dsn,
                        "SELECT count(*) AS n FROM admin_audit_events"
                        " WHERE zone_id = $1 AND chain_seq IS NULL",
                        zone,
                    )
                    return bool(rows[0]["n"] == 0)

                assert await wait_for(zone_chained, 10)
                holding = lock.transaction()
                await holding.start()
                await lock.execute("SELECT pg_advisory_xact_lock(hashtext($1))", zone)
                for i in range(5):
                    response = await http.patch(f"/v1/zones/{zone}", json={"name": f"rename {i}"})
                    assert response.status_code == 200, response.text

                async def chainer_waiting() -> bool:
                    rows = await fetch(
                        scratch_dsn,
                        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
                        " AND NOT granted AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())",
                    )
                    return bool(rows[0]["n"] > 0)

                assert await wait_for(chainer_waiting, 10), "the API never tried to chain"
            kill(api)
            await holding.rollback()
        unchained = await fetch(
            scratch_dsn,
            "SELECT count(*) AS n FROM admin_audit_events WHERE zone_id = $1 AND chain_seq IS NULL",
            zone,
        )
        assert unchained[0]["n"] == 5

        sweeper = worker(env, tmp_path, "dispatcher", "disp-sweep")
        assert await wait_for(zone_chained, 15, 0.2), "rows left unchained with a dispatcher up"
        verify = subprocess.run(
            [sys.executable, "-m", "caracal_api", "audit", "verify", "--zone", zone],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        result = json.loads(verify.stdout)
        assert result["ok"] is True
        assert result["unchained_rows"] == 0
        assert result["head_seq"] == 6
    finally:
        if sweeper is not None:
            sweeper.stop(timeout=20)
        await lock.close()
