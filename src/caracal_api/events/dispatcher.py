"""The outbox dispatcher (events.md §3).

Claims committed `event_outbox` rows, publishes them to their Redis streams with one
pipelined round trip per batch and marks them with at most two set-based statements.
Safe in many replicas: claims use `FOR UPDATE SKIP LOCKED` plus a lease, and every mark is
guarded by `(id, attempts, locked_by)`, so a row is marked dispatched exactly once even when
an expired lease made two dispatchers publish it (same `outbox_id`, at least once).

Wake-ups come from `LISTEN caracal_event_outbox` on a dedicated connection, with a polling
timer as fallback. A Redis outage releases the claimed batch (claim undone) and pauses
claiming until `PING` answers, so an outage never turns rows dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
from redis import exceptions as redis_exc
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from caracal_api import metrics
from caracal_api.config import Settings
from caracal_api.events import publish, signing, sql
from caracal_api.kit.db import asyncpg_dsn
from caracal_api.kit.rawread import RawSQL, raw_transaction

log = logging.getLogger(__name__)

CHANNEL: Final = "caracal_event_outbox"
RETENTION_INTERVAL_SEC: Final = 3600.0
_ERROR_TEXT_MAX: Final = 1000
_LISTEN_BACKOFF_START: Final = 1.0
_LISTEN_BACKOFF_MAX: Final = 30.0
_LISTEN_CHECK_SEC: Final = 10.0
_REDIS_BACKOFF_START: Final = 0.5
_REDIS_BACKOFF_MAX: Final = 10.0


# Error replies that mean "Redis cannot take writes right now", not "this row is poison".
_INFRA_REPLIES: Final = (redis_exc.ConnectionError, redis_exc.TimeoutError, redis_exc.ReadOnlyError)
_INFRA_ERRORS: Final = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


@dataclass
class Claimed:
    id: str
    stream: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass
class DispatcherStats:
    """Counters of this instance (observability and tests; Prometheus has the global view)."""

    batches: int = 0
    claimed: int = 0
    pipelines: int = 0
    mark_statements: int = 0
    published: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    redis_pauses: int = 0
    retention_deleted: int = 0
    listen_connects: int = 0


class RedisUnavailable(Exception):
    """The batch could not reach Redis at all (no reply)."""


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_ERROR_TEXT_MAX]


class Dispatcher:
    """Publishes outbox rows; `run()` until `stop()`.

    `engine` is the process's pooled engine (claims and marks use short autocommit
    statements on it); the LISTEN connection is a dedicated asyncpg connection to
    `settings.session_database_url` (DATABASE_DIRECT_URL or DATABASE_URL), or to the
    engine's own URL when neither is set (embedded mode, tests).
    """

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        redis: Redis,
        *,
        listen: bool = True,
        retention: bool = True,
        listen_dsn: str | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = settings.worker_id
        self._engine = engine
        self._redis = redis
        self._listen_enabled = listen
        self._retention_enabled = retention and settings.outbox_retention_days > 0
        self._listen_dsn = listen_dsn or settings.session_database_url
        self._batch = settings.outbox_batch_size
        self._poll = settings.outbox_poll_ms / 1000
        self._maxlen: tuple[str, ...] = (
            ("MAXLEN", "~", str(settings.outbox_stream_maxlen))
            if settings.outbox_stream_maxlen > 0
            else ()
        )
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._redis_ok = True
        self._run_task: asyncio.Task[None] | None = None
        self._listen_conn: asyncpg.Connection | None = None
        self.stats = DispatcherStats()
        # Test hook: called between publish and mark with the claimed rows.
        self.after_publish: Callable[[list[Claimed]], Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until `stop()`; returns after the current batch is finished."""
        self._run_task = asyncio.current_task()
        helpers: list[asyncio.Task[None]] = []
        if self._listen_enabled:
            helpers.append(asyncio.create_task(self._listen_loop(), name="outbox-listen"))
        if self._retention_enabled:
            helpers.append(asyncio.create_task(self._retention_loop(), name="outbox-retention"))
        try:
            while not self._stopping.is_set():
                await self._drain()
                if self._stopping.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                self._wake.clear()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._close_listen()
            self._stopped.set()

    async def stop(self, grace: float | None = None) -> bool:
        """Stop claiming and wait for the current batch (publish + mark) to finish.

        Waits at most `grace` seconds (default SHUTDOWN_GRACE_MS); past it the run task is
        cancelled (its claimed rows are re-published after their lease). Returns True when
        the dispatcher finished within the grace period.
        """
        self._stopping.set()
        self._wake.set()
        task = self._run_task
        if task is None or task.done():
            return True
        budget = self.settings.shutdown_grace_ms / 1000 if grace is None else grace
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped.wait()), timeout=budget)
            return True
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return False

    def wake(self) -> None:
        """Ask for one more drain (also what a NOTIFY does)."""
        self._wake.set()

    @property
    def redis_available(self) -> bool:
        return self._redis_ok

    # -- drain / cycle ---------------------------------------------------------------------

    async def _drain(self) -> None:
        """Claim cycles back to back until one claims fewer than a full batch.

        While a full batch is published and marked, the next claim already runs: its rows
        are disjoint (the current batch is leased), and a backlog then drains at the pace of
        the slower half instead of the sum of both.
        """
        prefetch: asyncio.Task[tuple[list[Claimed], float]] | None = None
        try:
            while not self._stopping.is_set():
                if not self._redis_ok and not await self._wait_for_redis():
                    return
                if prefetch is not None:
                    rows, started = await prefetch
                    prefetch = None
                else:
                    rows, started = await self._claim_timed()
                if not rows:
                    return
                if len(rows) >= self._batch and not self._stopping.is_set():
                    prefetch = asyncio.create_task(self._claim_timed())
                await self._process(rows, started)
                if len(rows) < self._batch:
                    return
                if not self._redis_ok and prefetch is not None:
                    # Nothing can be published now: give the prefetched rows back at once.
                    rows, _ = await prefetch
                    prefetch = None
                    await self._release(rows, "redis unavailable", outage=False)
        finally:
            if prefetch is not None:
                rows, _ = await prefetch
                await self._release(rows, "dispatcher stopping", outage=False)

    async def cycle(self) -> int:
        """One claim + publish + mark; returns the number of rows claimed."""
        rows, started = await self._claim_timed()
        if rows:
            await self._process(rows, started)
        return len(rows)

    async def _claim_timed(self) -> tuple[list[Claimed], float]:
        started = time.perf_counter()
        try:
            return await self._claim(), started
        except Exception:
            log.exception("outbox claim failed")
            return [], started

    async def _process(self, rows: list[Claimed], started: float) -> None:
        """Publish a claimed batch and mark it (or release it when Redis is unreachable)."""
        self.stats.batches += 1
        self.stats.claimed += len(rows)
        try:
            replies = await self._publish(rows)
        except RedisUnavailable as exc:
            await self._release(rows, f"redis unavailable: {exc}", outage=True)
            return
        if self.after_publish is not None:
            result = self.after_publish(rows)
            if asyncio.iscoroutine(result):
                await result
        await self._mark(rows, replies)
        metrics.OUTBOX_BATCH_DURATION.observe(time.perf_counter() - started)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[RawSQL]:
        """A short transaction for one dispatcher statement, committed asynchronously.

        Waiting for the WAL flush of claims and marks took ~16 of the ~30 ms of a cycle
        (bench/outbox_bench.py; with this, the pipelined publish and the overlapped next
        claim, drain went from ~4,000 to ~8,600 events/s on a 2-CPU host). Losing one
        in a server crash is harmless: a lost claim was never published or is re-published
        after the lease; a lost mark re-publishes the row with the same outbox_id, which
        at-least-once delivery allows. Request transactions keep synchronous commits.
        """
        async with raw_transaction(self._engine, async_commit=True) as db:
            yield db

    async def _claim(self) -> list[Claimed]:
        lease = float(self.settings.outbox_lock_sec)
        async with self._write() as db:
            rows = await db.fetch(sql.CLAIM, self._batch, lease, self.worker_id)
            return [Claimed(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def _publish(self, rows: list[Claimed]) -> list[Any]:
        """One pipelined round trip; one reply (entry id or error) per row, in order."""
        key = self.settings.streams_hmac_key
        commands: list[list[str]] = []
        for row in rows:
            command = ["XADD", row.stream, *self._maxlen, "*"]
            for name, value in signing.message_fields(row.stream, row.id, row.payload, key):
                command.append(name)
                command.append(value)
            commands.append(command)
        self.stats.pipelines += 1
        try:
            replies = await publish.execute(self._redis, commands)
        except _INFRA_ERRORS as exc:
            raise RedisUnavailable(_error_text(exc)) from exc
        infra = next((r for r in replies if isinstance(r, _INFRA_REPLIES)), None)
        if infra is not None:
            raise RedisUnavailable(_error_text(infra))
        return replies

    async def _release(self, rows: list[Claimed], error: str, *, outage: bool) -> None:
        """Undo the claim of rows that were not published (`attempts - 1`, lease cleared).

        `outage`: the batch never reached Redis; claiming pauses until PING answers.
        """
        if not rows:
            return
        if outage:
            self._redis_ok = False
            for row in rows:
                metrics.OUTBOX_PUBLISH_FAILURES.labels(stream=row.stream).inc()
            log.warning("outbox publish failed: redis unavailable", extra={"error": error})
        self.stats.released += len(rows)
        try:
            async with self._write() as db:
                await db.execute(
                    sql.RELEASE,
                    [r.id for r in rows],
                    [r.attempts for r in rows],
                    error[:_ERROR_TEXT_MAX],
                    self.worker_id,
                )
        except Exception:
            # The lease expires after OUTBOX_LOCK_SEC and the rows are claimed again.
            log.exception("outbox release failed")

    async def _mark(self, rows: list[Claimed], replies: list[Any]) -> None:
        ok_ids: list[str] = []
        ok_attempts: list[int] = []
        bad_ids: list[str] = []
        bad_attempts: list[int] = []
        bad_errors: list[str] = []
        streams = {r.id: r.stream for r in rows}
        for row, reply in zip(rows, replies, strict=True):
            if isinstance(reply, BaseException):
                bad_ids.append(row.id)
                bad_attempts.append(row.attempts)
                bad_errors.append(_error_text(reply))
                metrics.OUTBOX_PUBLISH_FAILURES.labels(stream=row.stream).inc()
            else:
                ok_ids.append(row.id)
                ok_attempts.append(row.attempts)
        try:
            async with self._write() as db:
                if ok_ids:
                    self.stats.mark_statements += 1
                    marked = await db.fetch(
                        sql.MARK_DISPATCHED, ok_ids, ok_attempts, self.worker_id
                    )
                    for marked_id, latency in marked:
                        self.stats.published += 1
                        metrics.OUTBOX_PUBLISHED.labels(stream=streams[marked_id]).inc()
                        metrics.OUTBOX_PUBLISH_LATENCY.observe(max(0.0, float(latency)))
                if bad_ids:
                    self.stats.mark_statements += 1
                    failed = await db.fetch(
                        sql.MARK_FAILED,
                        bad_ids,
                        bad_attempts,
                        bad_errors,
                        self.settings.outbox_max_attempts,
                        self.worker_id,
                    )
                    for _failed_id, stream, dead in failed:
                        self.stats.failed += 1
                        if dead:
                            self.stats.dead += 1
                            metrics.OUTBOX_DEAD_LETTERED.labels(stream=stream).inc()
                            log.error("outbox row dead", extra={"outbox_id": _failed_id})
        except Exception:
            # Same as a crash between XADD and mark: the lease expires and the rows are
            # published again with the same outbox_id.
            log.exception("outbox mark failed")

    async def _wait_for_redis(self) -> bool:
        """Pause claiming until PING answers (0.5 s doubling to 10 s); False when stopping."""
        self.stats.redis_pauses += 1
        delay = _REDIS_BACKOFF_START
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            if self._stopping.is_set():
                return False
            try:
                if await self._redis.ping():
                    self._redis_ok = True
                    log.info("outbox dispatcher: redis reachable again")
                    return True
            except Exception as exc:
                log.debug("outbox dispatcher: redis ping failed", extra={"error": str(exc)})
            delay = min(delay * 2, _REDIS_BACKOFF_MAX)
        return False

    # -- LISTEN ----------------------------------------------------------------------------

    def _dsn(self) -> str:
        if self._listen_dsn:
            return asyncpg_dsn(self._listen_dsn)
        return asyncpg_dsn(self._engine.url.render_as_string(hide_password=False))

    def _on_notify(self, *_args: Any) -> None:
        self._wake.set()

    async def _listen_loop(self) -> None:
        delay = _LISTEN_BACKOFF_START
        while not self._stopping.is_set():
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self._dsn(),
                    server_settings={"application_name": f"{self.worker_id}:listen"[:63]},
                    timeout=10,
                )
                self._listen_conn = conn
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.stats.listen_connects += 1
                delay = _LISTEN_BACKOFF_START
                # Rows committed while we were not listening: drain once.
                self._wake.set()
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=_LISTEN_CHECK_SEC)
                    if not lost.is_set() and not conn.is_closed():
                        # Detects half-open sockets the server never closed for us.
                        await conn.execute("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox listen connection failed", extra={"error": _error_text(exc)})
            await self._close_listen()
            if self._stopping.is_set():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LISTEN_BACKOFF_MAX)

    async def _close_listen(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            if not conn.is_closed():
                conn.terminate()

    # -- retention -------------------------------------------------------------------------

    async def _retention_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await run_retention(self._engine, self.settings.outbox_retention_days, self.stats)
            except Exception:
                log.exception("outbox retention failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=RETENTION_INTERVAL_SEC)


async def run_retention(
    engine: AsyncEngine, days: int, stats: DispatcherStats | None = None
) -> int:
    """Delete dispatched rows older than `days` (events.md §2); returns the count.

    Batches of at most 1000 rows, one short transaction each, repeated while a batch was
    full. `days` = 0 deletes nothing.
    """
    if days <= 0:
        return 0
    total = 0
    while True:
        async with engine.begin() as conn:
            result = await conn.execute(sql.RETENTION_DELETE, {"days": days})
        deleted = result.rowcount or 0
        total += deleted
        if stats is not None:
            stats.retention_deleted += deleted
        if deleted < 1000:
            return total
