"""events.md §3.5 / §10 items 8, 11, 44 and the outbox CLI logic: fault tests with real
processes (a private redis-server that is stopped and restarted, a dispatcher process
killed between XADD and mark)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from caracal_api import metrics
from caracal_api.events import outbox
from caracal_api.events.dispatcher import Dispatcher, run_retention
from caracal_api.events.health import outbox_status, requeue, sample_outbox_metrics
from tests.integration.events.events_helpers import RedisServer, base_settings, wait_until

HERE = Path(__file__).parent


async def enqueue(engine: AsyncEngine, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    async with AsyncSession(engine) as session, session.begin():
        return await outbox.record_many(session, rows, request_id="req-fault")


async def counts(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE dispatched_at IS NOT NULL) AS dispatched,"
                    " count(*) FILTER (WHERE available_at = 'infinity') AS dead,"
                    " max(attempts) FILTER (WHERE dispatched_at IS NULL) AS max_pending_attempts,"
                    " count(*) FILTER (WHERE last_error LIKE 'redis unavailable%') AS released,"
                    " count(*) FILTER (WHERE locked_until IS NOT NULL"
                    "   AND dispatched_at IS NULL) AS locked"
                    " FROM event_outbox"
                )
            )
        ).one()
    return dict(row._mapping)


async def test_redis_outage_releases_claims_and_recovers(
    engine: AsyncEngine, private_redis: RedisServer, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.outage"
    client = aioredis.from_url(private_redis.url, socket_connect_timeout=1, socket_timeout=2)
    dispatcher = Dispatcher(base_settings(outbox_max_attempts=2), engine, client)
    task = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.sleep(0.3)
        private_redis.stop()
        ids = await enqueue(engine, [(stream, {"i": i}) for i in range(300)])
        assert await wait_until(lambda: dispatcher.stats.released > 0, 20)
        assert await wait_until(lambda: not dispatcher.redis_available, 5)
        # Let the pause last: several PING rounds, never a claim that counts.
        await asyncio.sleep(3)
        state = await counts(engine)
        assert state["dispatched"] == 0
        assert state["dead"] == 0
        assert state["max_pending_attempts"] == 0
        assert state["released"] >= 1
        assert state["locked"] == 0
        released_so_far = dispatcher.stats.released
        assert released_so_far <= 2 * dispatcher.settings.outbox_batch_size

        private_redis.start()
        assert await wait_until(lambda: dispatcher.stats.published >= 300, 30, 0.1)
    finally:
        await dispatcher.stop(grace=10)
        await asyncio.wait_for(task, 10)
    state = await counts(engine)
    assert state["dispatched"] == 300
    assert state["dead"] == 0
    entries = await client.xrange(stream)
    published = {fields[b"outbox_id"].decode() for _id, fields in entries}
    assert published == set(ids)
    await client.aclose()


async def test_killed_dispatcher_row_is_republished_with_same_outbox_id(
    engine: AsyncEngine,
    events_dsn: str,
    redis_client: aioredis.Redis,
    stream_prefix: str,
    tmp_path: Path,
) -> None:
    stream = f"{stream_prefix}.crash"
    (oid,) = await enqueue(engine, [(stream, {"zone_id": "z"})])
    marker = tmp_path / "published"
    redis_url = os.environ.get("CARACAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "dispatcher_proc.py"), events_dsn, redis_url, str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert await wait_until(marker.exists, 30, 0.05), proc.stderr
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    first = await redis_client.xrange(stream)
    assert [f[b"outbox_id"].decode() for _i, f in first] == [oid]
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT attempts, dispatched_at FROM event_outbox WHERE id = :id"),
                {"id": oid},
            )
        ).one()
    assert row.attempts == 1
    assert row.dispatched_at is None

    survivor = Dispatcher(base_settings(outbox_poll_ms=100), engine, redis_client, listen=False)
    task = asyncio.create_task(survivor.run())
    try:
        # The lease (OUTBOX_LOCK_SEC=2 in the killed process) expires, then re-publish.
        assert await wait_until(lambda: survivor.stats.published >= 1, 10)
    finally:
        await survivor.stop()
        await task
    entries = await redis_client.xrange(stream)
    assert [f[b"outbox_id"].decode() for _i, f in entries] == [oid, oid]
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT attempts, dispatched_at, locked_by FROM event_outbox WHERE id = :id"),
                {"id": oid},
            )
        ).one()
    assert row.attempts == 2
    assert row.dispatched_at is not None
    assert row.locked_by == survivor.worker_id
    await redis_client.delete(stream)


async def _seed_retention(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO event_outbox (id, stream_name, payload_json, attempts,
                                          available_at, dispatched_at, created_at)
                SELECT 'old-' || g, 'caracal.sessions.revoke', '{"zone_id":"z"}', 1,
                       now() - interval '2 days', now() - interval '2 days',
                       now() - interval '2 days'
                FROM generate_series(1, 2500) g
                """
            )
        )
        # Three invalidations of (z1, ps1), one of (z1, ps2), all dispatched long ago.
        for i, (ps, age) in enumerate((("ps1", 5), ("ps1", 4), ("ps1", 3), ("ps2", 5))):
            await conn.execute(
                text(
                    "INSERT INTO event_outbox (id, stream_name, payload_json, attempts,"
                    " available_at, dispatched_at, created_at) VALUES (:id,"
                    " 'caracal.policy.invalidate', CAST(:p AS jsonb), 1,"
                    " now() - make_interval(days => :age), now() - make_interval(days => :age),"
                    " now() - make_interval(days => :age))"
                ),
                {"id": f"inv-{i}", "p": f'{{"zone_id":"z1","policy_set_id":"{ps}"}}', "age": age},
            )
        await conn.execute(
            text(
                """
                INSERT INTO event_outbox (id, stream_name, payload_json, attempts, available_at,
                                          dispatched_at, created_at) VALUES
                ('pending-old', 's', '{}', 3, now() - interval '9 days', NULL,
                 now() - interval '9 days'),
                ('dead-old', 's', '{}', 100, 'infinity', NULL, now() - interval '9 days'),
                ('recent', 's', '{}', 1, now() - interval '1 hour', now() - interval '1 hour',
                 now() - interval '1 hour')
                """
            )
        )
    return {}


async def remaining_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id FROM event_outbox WHERE id NOT LIKE 'old-%'"))
        ).all()
        old = (
            await conn.execute(text("SELECT count(*) FROM event_outbox WHERE id LIKE 'old-%'"))
        ).scalar()
    return {r.id for r in rows} | ({f"old x{old}"} if old else set())


async def test_retention_deletes_old_dispatched_rows_only(engine: AsyncEngine) -> None:
    await _seed_retention(engine)
    assert await run_retention(engine, 0) == 0
    deleted = await run_retention(engine, 1)
    assert deleted == 2500 + 2
    assert await remaining_ids(engine) == {"inv-2", "inv-3", "pending-old", "dead-old", "recent"}
    assert await run_retention(engine, 1) == 0


async def test_retention_concurrent_runs_delete_each_row_once(
    engine: AsyncEngine, events_dsn: str
) -> None:
    await _seed_retention(engine)
    other = create_async_engine(events_dsn.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        a, b = await asyncio.gather(run_retention(engine, 1), run_retention(other, 1))
    finally:
        await other.dispose()
    assert a + b == 2502
    assert await remaining_ids(engine) == {"inv-2", "inv-3", "pending-old", "dead-old", "recent"}


async def test_dispatcher_runs_retention_at_start(
    engine: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    await _seed_retention(engine)
    dispatcher = Dispatcher(
        base_settings(outbox_retention_days=1), engine, redis_client, listen=False
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        assert await wait_until(lambda: dispatcher.stats.retention_deleted >= 2502, 10)
    finally:
        await dispatcher.stop()
        await task


async def test_outbox_status_and_requeue(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO event_outbox (id, stream_name, payload_json, attempts, available_at,
                                          created_at) VALUES
                ('d1', 'a', '{}', 100, 'infinity', now() - interval '10 seconds'),
                ('d2', 'a', '{}', 100, 'infinity', now()),
                ('d3', 'b', '{}', 100, 'infinity', now()),
                ('p1', 'b', '{}', 0, now() + interval '1 minute', now() - interval '5 seconds')
                """
            )
        )
    status = await outbox_status(engine)
    assert status["pending"] == 1
    assert status["dead"] == 3
    assert status["oldest_dead_age"] >= 10
    assert 5 <= status["oldest_pending_age"] < 60
    assert status["dead_by_stream"] == {"a": 2, "b": 1}
    assert await requeue(engine, id="d3") == 1
    assert await requeue(engine, id="p1") == 0
    assert await requeue(engine, stream="a") == 2
    assert await requeue(engine) == 0
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, attempts, available_at <= now() AS due FROM event_outbox"
                    " WHERE id LIKE 'd%' ORDER BY id"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("d1", 0, True), ("d2", 0, True), ("d3", 0, True)]
    status = await outbox_status(engine)
    assert status["dead"] == 0
    assert status["pending"] == 4


async def test_metrics_sampling_marks_health_down_on_failure(engine: AsyncEngine) -> None:
    health = await sample_outbox_metrics(engine)
    assert health is not None
    assert metrics.OUTBOX_HEALTH_UP._value.get() == 1
    broken = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        assert await sample_outbox_metrics(broken, limit_sec=2) is None
    finally:
        await broken.dispose()
    assert metrics.OUTBOX_HEALTH_UP._value.get() == 0
