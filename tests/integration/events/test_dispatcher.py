"""events.md §3 / §10 items 1–13: the dispatcher against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from caracal_api import metrics
from caracal_api.config import Settings
from caracal_api.events import outbox, signing
from caracal_api.events.dispatcher import Dispatcher
from caracal_api.events.health import outbox_health, set_outbox_gauges
from tests.integration.events.events_helpers import HMAC_KEY, base_settings, wait_until


async def enqueue(
    engine: AsyncEngine, rows: list[tuple[str, dict[str, Any]]], request_id: str = "req-1"
) -> list[str]:
    async with AsyncSession(engine) as session, session.begin():
        return await outbox.record_many(session, rows, request_id=request_id)


@asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(dispatcher.run())
    try:
        yield task
    finally:
        await dispatcher.stop(grace=10)
        await asyncio.wait_for(task, timeout=10)


def decoded(entries: list[Any]) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in entries]


async def row_state(engine: AsyncEngine, outbox_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT attempts, dispatched_at, locked_until, locked_by, last_error,"
                    " available_at = 'infinity' AS dead,"
                    " CASE WHEN available_at <> 'infinity'"
                    "   THEN EXTRACT(EPOCH FROM available_at - now()) END AS delay"
                    " FROM event_outbox WHERE id = :id"
                ),
                {"id": outbox_id},
            )
        ).one()
    return dict(row._mapping)


async def test_rollback_leaves_no_row_commit_leaves_one(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        rolled = await outbox.record(session, "s.rollback", {"a": 1}, request_id="r")
        await session.rollback()
    async with AsyncSession(engine) as session, session.begin():
        kept = await outbox.record(session, "s.commit", {"a": 1}, request_id="r")
    async with engine.connect() as conn:
        ids = (await conn.execute(text("SELECT id, request_id FROM event_outbox"))).all()
    assert [(kept, "r")] == [tuple(r) for r in ids]
    assert rolled != kept


async def test_enqueue_refuses_bad_payload_in_transaction(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        for bad in ({"f": 1.0}, {"n": {"a": 1}}, {"_sig": "x"}, {"outbox_id": "x"}, {"l": []}):
            with pytest.raises((TypeError, ValueError)):
                await outbox.record(session, "s", bad, request_id=None)


async def test_listen_wakes_within_one_second_and_publishes_once(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.invalidate"
    # A long poll interval proves the wake-up comes from NOTIFY.
    settings = base_settings(outbox_poll_ms=30_000, streams_hmac_key=HMAC_KEY)
    dispatcher = Dispatcher(settings, engine, redis_client)
    async with running(dispatcher):
        assert await wait_until(lambda: dispatcher.stats.listen_connects >= 1, 5)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        (oid,) = await enqueue(
            engine,
            [(stream, {"zone_id": "z1", "policy_set_id": "ps1", "policy_set_version_id": "v1"})],
        )
        assert await wait_until(lambda: redis_client.xlen(stream), 1.0, 0.005)
        latency = time.monotonic() - started
        await asyncio.sleep(2.0)
        entries = decoded(await redis_client.xrange(stream))
    assert latency < 1.0
    assert len(entries) == 1
    assert entries[0]["outbox_id"] == oid
    assert entries[0]["zone_id"] == "z1"
    assert entries[0]["policy_set_version_id"] == "v1"
    state = await row_state(engine, oid)
    assert state["dispatched_at"] is not None
    assert state["attempts"] == 1
    await redis_client.delete(stream)


async def test_polling_works_without_listen(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str, events_dsn: str
) -> None:
    stream = f"{stream_prefix}.poll"
    settings = base_settings(outbox_poll_ms=250)
    dispatcher = Dispatcher(settings, engine, redis_client)
    async with running(dispatcher):
        assert await wait_until(lambda: dispatcher.stats.listen_connects >= 1, 5)
        # Kill the notification connection: polling must still deliver.
        admin = await asyncpg.connect(events_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                f"{settings.worker_id}:listen"[:63],
            )
        finally:
            await admin.close()
        assert killed == 1
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await enqueue(engine, [(stream, {"k": "v"})])
        assert await wait_until(lambda: redis_client.xlen(stream), 2.0, 0.01)
        elapsed = time.monotonic() - started
        # Listen reconnects with backoff (1 s) in the background.
        assert await wait_until(lambda: dispatcher.stats.listen_connects >= 2, 5)
    assert elapsed < 0.25 + 0.5
    await redis_client.delete(stream)


async def test_fields_order_stringification_null_dropped_and_sig(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.fields"
    settings = base_settings(streams_hmac_key=HMAC_KEY)
    (oid,) = await enqueue(
        engine,
        [
            (
                stream,
                {
                    "zone_id": "z1",
                    "policy_set_id": "ps1",
                    "policy_set_version_id": None,
                    "flag": True,
                    "off": False,
                    "count": 12,
                    "neg": -3,
                },
            )
        ],
    )
    dispatcher = Dispatcher(settings, engine, redis_client, listen=False)
    await dispatcher.cycle()
    entries = await redis_client.xrange(stream)
    assert len(entries) == 1
    fields = [(k.decode(), v.decode()) for k, v in entries[0][1].items()]
    names = [n for n, _ in fields]
    assert names == ["outbox_id", "count", "flag", "neg", "off", "policy_set_id", "zone_id", "_sig"]
    values = dict(fields)
    assert values["outbox_id"] == oid
    assert values["flag"] == "true"
    assert values["off"] == "false"
    assert values["count"] == "12"
    assert values["neg"] == "-3"
    assert "policy_set_version_id" not in values
    assert signing.verify([HMAC_KEY], stream, values)
    assert not signing.verify([HMAC_KEY], "caracal.sessions.revoke", values)
    assert not signing.verify([HMAC_KEY], stream, {**values, "zone_id": "z2"})
    assert not signing.verify([bytes(32)], stream, values)
    await redis_client.delete(stream)


async def test_no_key_no_sig(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.nosig"
    await enqueue(engine, [(stream, {"zone_id": "z1"})])
    dispatcher = Dispatcher(base_settings(), engine, redis_client, listen=False)
    await dispatcher.cycle()
    (entry,) = decoded(await redis_client.xrange(stream))
    assert list(entry) == ["outbox_id", "zone_id"]
    await redis_client.delete(stream)


async def test_500_rows_one_pipeline_and_at_most_two_updates_per_batch(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.bulk"
    ids = await enqueue(engine, [(stream, {"i": i}) for i in range(500)])
    dispatcher = Dispatcher(base_settings(outbox_batch_size=128), engine, redis_client)
    async with running(dispatcher):
        assert await wait_until(lambda: dispatcher.stats.published >= 500, 10)
    stats = dispatcher.stats
    assert stats.batches == 4
    assert stats.pipelines == stats.batches
    assert stats.mark_statements <= 2 * stats.batches
    entries = decoded(await redis_client.xrange(stream))
    assert sorted(e["outbox_id"] for e in entries) == sorted(ids)
    async with engine.connect() as conn:
        undispatched = (
            await conn.execute(
                text("SELECT count(*) FROM event_outbox WHERE dispatched_at IS NULL")
            )
        ).scalar()
    assert undispatched == 0
    await redis_client.delete(stream)


async def test_maxlen_trims_the_stream(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.trim"
    await enqueue(engine, [(stream, {"i": i}) for i in range(1000)])
    settings = base_settings(outbox_stream_maxlen=10, outbox_batch_size=1000)
    await Dispatcher(settings, engine, redis_client, listen=False).cycle()
    # MAXLEN ~ trims whole macro nodes only: the stream is capped well below 1000.
    assert await redis_client.xlen(stream) < 1000
    await redis_client.delete(stream)


async def test_per_row_error_backs_off_and_reaches_dead(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    bad_stream = f"{stream_prefix}.wrongtype"
    good_stream = f"{stream_prefix}.good"
    await redis_client.set(bad_stream, "not a stream")
    bad, good = await enqueue(engine, [(bad_stream, {"a": 1}), (good_stream, {"a": 2})])
    settings = base_settings(outbox_max_attempts=3)
    dispatcher = Dispatcher(settings, engine, redis_client, listen=False)
    dead_before = metrics.OUTBOX_DEAD_LETTERED.labels(stream=bad_stream)._value.get()

    await dispatcher.cycle()
    state = await row_state(engine, bad)
    assert state["attempts"] == 1
    assert state["dispatched_at"] is None
    assert state["locked_until"] is None
    assert "WRONGTYPE" in state["last_error"]
    # b = 2^1 = 2, d in [2, 2.6]
    assert 1.5 <= state["delay"] <= 2.7
    assert (await row_state(engine, good))["dispatched_at"] is not None

    for expected_attempts, low, high in ((2, 3.5, 5.3),):
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE event_outbox SET available_at = now() WHERE id = :id"), {"id": bad}
            )
        await dispatcher.cycle()
        state = await row_state(engine, bad)
        assert state["attempts"] == expected_attempts
        assert low <= state["delay"] <= high

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE event_outbox SET available_at = now() WHERE id = :id"), {"id": bad}
        )
    await dispatcher.cycle()
    state = await row_state(engine, bad)
    assert state["attempts"] == 3
    assert state["dead"] is True
    assert dispatcher.stats.dead == 1
    assert metrics.OUTBOX_DEAD_LETTERED.labels(stream=bad_stream)._value.get() == dead_before + 1
    # Dead rows are never claimed again.
    assert await dispatcher.cycle() == 0
    async with engine.connect() as conn:
        health = await outbox_health(conn)
    assert health.dead == 1
    assert health.pending == 0
    assert health.oldest_dead_age >= 0
    set_outbox_gauges(health)
    assert metrics.OUTBOX_DEAD._value.get() == 1
    await redis_client.delete(bad_stream, good_stream)


async def test_two_dispatchers_mark_every_row_exactly_once(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.pair"
    ids = await enqueue(engine, [(stream, {"i": i}) for i in range(2000)])
    first = Dispatcher(base_settings(), engine, redis_client)
    second = Dispatcher(base_settings(), engine, redis_client)
    async with running(first), running(second):
        assert await wait_until(lambda: first.stats.published + second.stats.published >= 2000, 20)
    assert first.stats.published + second.stats.published == 2000
    assert first.stats.published > 0
    assert second.stats.published > 0
    entries = decoded(await redis_client.xrange(stream))
    published = [e["outbox_id"] for e in entries]
    assert len(published) == 2000  # no duplicates while no lease expired
    assert sorted(published) == sorted(ids)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT attempts, count(*) FROM event_outbox"
                    " WHERE dispatched_at IS NOT NULL GROUP BY attempts"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, 2000)]
    await redis_client.delete(stream)


async def test_stale_lease_cannot_mark_a_reclaimed_row(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    """The (id, attempts, locked_by) guard: a dispatcher whose lease expired marks nothing."""
    stream = f"{stream_prefix}.lease"
    (oid,) = await enqueue(engine, [(stream, {"a": 1})])
    slow = Dispatcher(base_settings(outbox_lock_sec=1), engine, redis_client, listen=False)
    fast = Dispatcher(base_settings(), engine, redis_client, listen=False)
    released = asyncio.Event()

    async def hold(_rows: list[Any]) -> None:
        await asyncio.sleep(1.3)  # lease expires; `fast` re-claims and marks meanwhile
        released.set()

    slow.after_publish = hold
    slow_cycle = asyncio.create_task(slow.cycle())
    await asyncio.sleep(1.15)
    assert await fast.cycle() == 1
    await slow_cycle
    assert slow.stats.published == 0
    assert fast.stats.published == 1
    state = await row_state(engine, oid)
    assert state["attempts"] == 2
    assert state["locked_by"] == fast.worker_id
    entries = decoded(await redis_client.xrange(stream))
    assert [e["outbox_id"] for e in entries] == [oid, oid]
    await redis_client.delete(stream)


async def test_stop_finishes_the_current_batch(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.stop"
    ids = await enqueue(engine, [(stream, {"i": i}) for i in range(50)])
    dispatcher = Dispatcher(base_settings(), engine, redis_client, listen=False)
    in_batch = asyncio.Event()

    async def slow(_rows: list[Any]) -> None:
        in_batch.set()
        await asyncio.sleep(0.5)

    dispatcher.after_publish = slow
    task = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(in_batch.wait(), 5)
    started = time.monotonic()
    finished_in_time = await dispatcher.stop(grace=5)
    assert finished_in_time
    assert time.monotonic() - started < 5
    await asyncio.wait_for(task, 1)
    assert dispatcher.stats.published == 50
    for oid in ids[:3]:
        assert (await row_state(engine, oid))["dispatched_at"] is not None
    await redis_client.delete(stream)


async def test_stop_past_grace_cancels(
    engine: AsyncEngine, redis_client: aioredis.Redis, stream_prefix: str
) -> None:
    stream = f"{stream_prefix}.grace"
    await enqueue(engine, [(stream, {"i": 1})])
    dispatcher = Dispatcher(base_settings(), engine, redis_client, listen=False)
    in_batch = asyncio.Event()

    async def stuck(_rows: list[Any]) -> None:
        in_batch.set()
        await asyncio.sleep(30)

    dispatcher.after_publish = stuck
    task = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(in_batch.wait(), 5)
    assert not await dispatcher.stop(grace=0.3)
    assert task.done()
    await redis_client.delete(stream)


def _settings_factory(**kw: Any) -> Callable[[], Settings]:
    return lambda: base_settings(**kw)


async def test_in_process_stream_store_receives_the_xadds(engine: AsyncEngine) -> None:
    """Embedded mode: the fakeredis store takes the pipelined path, same fields."""
    import fakeredis

    store = fakeredis.FakeAsyncRedis()
    (oid,) = await enqueue(engine, [("caracal.policy.invalidate", {"zone_id": "z", "n": 1})])
    dispatcher = Dispatcher(base_settings(streams_hmac_key=HMAC_KEY), engine, store, listen=False)
    assert await dispatcher.cycle() == 1
    (entry,) = decoded(await store.xrange("caracal.policy.invalidate"))
    assert list(entry) == ["outbox_id", "n", "zone_id", "_sig"]
    assert entry["outbox_id"] == oid
    assert signing.verify([HMAC_KEY], "caracal.policy.invalidate", entry)
    assert (await row_state(engine, oid))["dispatched_at"] is not None
    await store.aclose()
