"""DCR expiry sweep (objects.md §2.3).

Meant to run every 60 s in processes that run the dispatcher. `engine` must reach
PostgreSQL itself (`DATABASE_DIRECT_URL` when set): the session-level advisory lock has to
stay on one server connection, which a transaction-pooling PgBouncer does not guarantee.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from caracal_api.applications.repository import SWEEP, SWEEP_LOCK_KEY
from caracal_api.kit import db

if TYPE_CHECKING:
    from caracal_api.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 500
INTERVAL_S = 60.0


async def sweep_expired_dcr(engine: AsyncEngine, *, limit: int = BATCH) -> int | None:
    """Archive up to `limit` DCR applications expired more than 24 h ago.

    Returns how many were archived, or None when another sweeper holds the lock.
    No attribution, no admin audit, no outbox rows.
    """
    async with engine.connect() as conn:
        got = (
            await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SWEEP_LOCK_KEY})
        ).scalar_one()
        await conn.commit()
        if not got:
            return None
        try:
            result = await conn.execute(SWEEP, {"limit": limit})
            await conn.commit()
            archived = result.rowcount or 0
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_KEY})
            await conn.commit()
    if archived:
        log.info("archived %d expired DCR applications", archived)
    return archived


class DcrSweepHook:
    """Runs the sweep every 60 s in processes that run the dispatcher (`app.hooks()`)."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._engine: AsyncEngine | None = None

    async def start(self, runtime: Runtime) -> None:
        if not runtime.run_dispatcher:
            return
        engine = runtime.engine
        if runtime.session_dsn and runtime.settings.database_direct_url:
            engine = db.create_engine(runtime.settings, runtime.session_dsn, pool_size=1)
            self._engine = engine
        self._task = asyncio.create_task(self._loop(engine))

    async def _loop(self, engine: AsyncEngine) -> None:
        while True:
            try:
                await sweep_expired_dcr(engine)
            except Exception:
                log.exception("DCR expiry sweep failed")
            await asyncio.sleep(self.interval)

    async def stop(self, runtime: Runtime, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
