"""The long-lived handles of one process, created in the lifespan, never at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caracal_api.audit.chainer import ChainScheduler
from caracal_api.auth.gates import zone_is_reserved
from caracal_api.auth.ratelimit import RedisClock, WindowLimiter
from caracal_api.auth.tokens import TokenVerifier
from caracal_api.auth.ttlcache import TTLCache
from caracal_api.config import Settings
from caracal_api.kit import db

log = logging.getLogger("caracal_api.runtime")
T = TypeVar("T")


@dataclass
class Limiters:
    ip: WindowLimiter
    token: WindowLimiter
    auth_fail: WindowLimiter
    ready: WindowLimiter
    validate: WindowLimiter

    @classmethod
    def build(cls, settings: Settings, redis: Redis) -> Limiters:
        clock = RedisClock(redis)
        limit = settings.api_v1_rate_limit_per_min
        return cls(
            ip=WindowLimiter("ip", "api:v1_rl:ip:", limit, clock),
            token=WindowLimiter("token", "api:v1_rl:token:", limit, clock),
            auth_fail=WindowLimiter(
                "auth_fail", "api:admin_auth_fail:", settings.admin_auth_fail_limit_per_min, clock
            ),
            ready=WindowLimiter("ready", "api:ready_rl:", settings.ready_rate_limit_per_min, clock),
            validate=WindowLimiter(
                "validate", "api:validate_rl:", settings.policy_validate_rate_limit_per_min, clock
            ),
        )


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    verifier: TokenVerifier
    limiters: Limiters
    chains: ChainScheduler
    session_dsn: str = ""  # LISTEN and session locks: DATABASE_DIRECT_URL or the main DSN
    embedded_postgres: bool = False
    embedded_redis: bool = False
    run_dispatcher: bool = False
    run_audit_ingest: bool = False
    draining: bool = False
    reserved_zones: TTLCache[str, bool] = field(default_factory=lambda: TTLCache(30.0, 1024))
    services: dict[str, Any] = field(default_factory=dict)  # domain singletons (rego engine, ...)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        settings: Settings,
        dsn: str,
        redis: Redis,
        *,
        embedded_postgres: bool,
        embedded_redis: bool,
    ) -> Runtime:
        engine = db.create_engine(settings, dsn)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=db.sessionmaker(engine),
            redis=redis,
            verifier=TokenVerifier(engine, redis, settings.admin_token_last_used_debounce_sec),
            limiters=Limiters.build(settings, redis),
            chains=ChainScheduler(engine, settings.audit_hmac_key),
            session_dsn=settings.database_direct_url or dsn,
            embedded_postgres=embedded_postgres,
            embedded_redis=embedded_redis,
        )

    def service(self, key: str, make: Callable[[], T]) -> T:
        """The process's domain singleton under `key` (`services`), made on first use."""
        found = self.services.get(key)
        if found is None:
            found = self.services[key] = make()
        return found

    def wake_dispatcher(self) -> None:
        """After a commit that wrote outbox rows: the in-process dispatcher (if this process
        runs one) starts its claim now instead of when the NOTIFY arrives."""
        dispatcher = self.services.get("dispatcher")
        if dispatcher is not None:
            dispatcher.wake()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task whose failure is logged, never lost."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def is_reserved_zone(self, zone_id: str) -> bool:
        """Gate 5 lookup through the per-process cache (archived zones included)."""
        cached = self.reserved_zones.get(zone_id)
        if cached is not None:
            return cached
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT name, slug FROM zones WHERE id = :id"), {"id": zone_id}
                )
            ).first()
        reserved = row is not None and zone_is_reserved(row.name, row.slug)
        self.reserved_zones.put(zone_id, reserved)
        return reserved

    async def drain_background(self) -> None:
        await self.chains.drain()
        await self.verifier.drain()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain_background()
        await self.engine.dispose()
        try:
            await self.redis.aclose()
        except Exception:
            log.debug("redis close failed")
