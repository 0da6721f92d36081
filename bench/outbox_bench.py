"""Outbox dispatcher benchmark: commit→XADD latency and backlog drain throughput.

    uv run python bench/outbox_bench.py [--events 500] [--backlog 50000]

Uses a throw-away migrated database on CARACAL_TEST_DATABASE_URL's server and the Redis of
CARACAL_TEST_REDIS_URL (unique stream names, deleted afterwards). Prints figures only; the
goals (p50 ≤ 10 ms, p99 ≤ 50 ms, drain ≥ 5,000 events/s) are shown for comparison, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import asyncpg
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from caracal_api.config import Settings
from caracal_api.events import outbox
from caracal_api.events.dispatcher import Dispatcher
from caracal_api.kit.migrate import upgrade_head

REDIS_URL = os.environ.get("CARACAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_DSN = os.environ.get(
    "CARACAL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await conn.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    await upgrade_head(dsn)
    return dsn


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def until(predicate: Callable[[], bool]) -> None:
    while True:
        if predicate():
            return
        await asyncio.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def latency(dsn: str, events: int, settings: Settings) -> list[float]:
    """Commit one event at a time; time from COMMIT returning to the entry being readable."""
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    redis = aioredis.from_url(REDIS_URL)
    reader = aioredis.from_url(REDIS_URL)
    stream = f"bench.latency.{uuid.uuid4().hex[:8]}"
    dispatcher = Dispatcher(settings, engine, redis, retention=False)
    task = asyncio.create_task(dispatcher.run())
    samples: list[float] = []
    try:
        await until(lambda: dispatcher.stats.listen_connects > 0)
        last_id = "$"
        for i in range(events):
            async with AsyncSession(engine) as session, session.begin():
                await outbox.record(session, stream, {"i": i, "zone_id": "z"}, request_id=None)
            committed = time.perf_counter()
            reply = await reader.xread({stream: last_id}, count=1, block=5000)
            arrived = time.perf_counter()
            if not reply:
                raise RuntimeError("event not published within 5 s")
            last_id = reply[0][1][-1][0]
            samples.append((arrived - committed) * 1000)
            await asyncio.sleep(0.002)
    finally:
        await dispatcher.stop()
        await task
        await redis.delete(stream)
        await redis.aclose()
        await reader.aclose()
        await engine.dispose()
    return samples


async def drain(dsn: str, backlog: int, settings: Settings) -> tuple[float, int]:
    """Enqueue `backlog` rows, then time one dispatcher draining them to Redis."""
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    redis = aioredis.from_url(REDIS_URL)
    stream = f"bench.drain.{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE event_outbox"))
    chunk = 5000
    for start in range(0, backlog, chunk):
        rows = [
            (stream, {"zone_id": "z1", "policy_set_id": f"ps{i}", "n": i, "flag": True})
            for i in range(start, min(backlog, start + chunk))
        ]
        async with AsyncSession(engine) as session, session.begin():
            await outbox.record_many(session, rows, request_id="bench")
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE event_outbox"))
    dispatcher = Dispatcher(settings, engine, redis, retention=False)
    started = time.perf_counter()
    task = asyncio.create_task(dispatcher.run())
    try:
        await until(lambda: dispatcher.stats.published >= backlog)
        elapsed = time.perf_counter() - started
    finally:
        await dispatcher.stop()
        await task
    published = await redis.xlen(stream)
    await redis.delete(stream)
    await redis.aclose()
    await engine.dispose()
    return elapsed, published


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=50_000)
    args = parser.parse_args()

    name = f"caracal_bench_{os.getpid()}"
    dsn = await create_database(name)
    settings = replace(
        Settings(),
        worker_id=f"bench:{os.getpid()}",
        streams_hmac_key=bytes(range(32)),
        outbox_retention_days=0,
    )
    try:
        samples = await latency(dsn, args.events, settings)
        elapsed, published = await drain(dsn, args.backlog, settings)
    finally:
        await drop_database(name)

    print(f"commit→XADD latency over {len(samples)} single events (LISTEN/NOTIFY, batch 128):")
    print(f"  p50 {statistics.median(samples):7.2f} ms   (goal ≤ 10 ms)")
    print(f"  p99 {percentile(samples, 0.99):7.2f} ms   (goal ≤ 50 ms)")
    print(f"  max {max(samples):7.2f} ms")
    print(f"drain of a {args.backlog:,}-row backlog: {elapsed:.2f} s, {published:,} entries")
    print(f"  {args.backlog / elapsed:,.0f} events/s   (goal ≥ 5,000 events/s)")


if __name__ == "__main__":
    asyncio.run(main())
