"""Fixed one-minute windows in Redis that fail open (foundation §8)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from caracal_api.metrics import RATE_LIMIT_BYPASSED, RATE_LIMIT_REJECTIONS

log = logging.getLogger("caracal_api.ratelimit")

REDIS_CALL_TIMEOUT = 0.25
SKIP_AFTER_FAILURE = 1.0
WARN_EVERY = 10.0
CLOCK_REUSE = 10.0


@dataclass
class RedisClock:
    """Redis `TIME` with a locally reused offset, so replicas agree on minute buckets."""

    redis: Redis
    _offset_ms: float = 0.0
    _measured_at: float = -1e9

    async def now_ms(self) -> float:
        if time.monotonic() - self._measured_at > CLOCK_REUSE:
            seconds, micros = await self.redis.time()
            self._offset_ms = seconds * 1000 + micros / 1000 - time.time() * 1000
            self._measured_at = time.monotonic()
        return time.time() * 1000 + self._offset_ms


@dataclass
class FailOpen:
    """Per-limiter state: skip Redis for 1 s after a failure, warn at most every 10 s."""

    name: str
    skip_until: float = 0.0
    last_warning: float = -1e9

    def skipping(self) -> bool:
        if time.monotonic() < self.skip_until:
            RATE_LIMIT_BYPASSED.labels(self.name).inc()
            return True
        return False

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.skip_until = now + SKIP_AFTER_FAILURE
        RATE_LIMIT_BYPASSED.labels(self.name).inc()
        if now - self.last_warning >= WARN_EVERY:
            self.last_warning = now
            log.warning(
                "rate limiter bypassed: redis unavailable",
                extra={"limiter": self.name, "error": type(exc).__name__},
            )


@dataclass
class WindowLimiter:
    """INCR + EXPIRE on `<prefix><subject>:<bucket>`; rejects when the count passes the limit."""

    name: str
    prefix: str
    limit: int
    clock: RedisClock
    state: FailOpen = field(init=False)

    def __post_init__(self) -> None:
        self.state = FailOpen(self.name)

    async def hit(self, subject: str) -> int | None:
        """None when allowed; the Retry-After seconds when rejected."""
        if self.limit <= 0 or self.state.skipping():
            return None
        try:
            return await asyncio.wait_for(self._hit(subject), REDIS_CALL_TIMEOUT)
        except Exception as exc:
            self.state.failed(exc)
            return None

    async def _hit(self, subject: str) -> int | None:
        now_ms = await self.clock.now_ms()
        bucket = int(now_ms // 60_000)
        key = f"{self.prefix}{subject}:{bucket}"
        pipe = self.clock.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 90)
        count, _ = await pipe.execute()
        if int(count) > self.limit:
            RATE_LIMIT_REJECTIONS.labels(self.name).inc()
            remaining = (bucket + 1) * 60_000 - now_ms
            return max(1, int(-(-remaining // 1000)))
        return None


@dataclass
class BurstLimiter:
    """`SET key 0 EX <window> NX` then `INCR` (objects.md §1.7 route limiters)."""

    name: str
    window: int
    limit: int
    redis: Redis
    state: FailOpen = field(init=False)

    def __post_init__(self) -> None:
        self.state = FailOpen(self.name)

    async def hit(self, key: str) -> int | None:
        if self.limit <= 0 or self.state.skipping():
            return None
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(key, 0, ex=self.window, nx=True)
            pipe.incr(key)
            _, count = await asyncio.wait_for(pipe.execute(), REDIS_CALL_TIMEOUT)
        except Exception as exc:
            self.state.failed(exc)
            return None
        if int(count) > self.limit:
            RATE_LIMIT_REJECTIONS.labels(self.name).inc()
            return self.window
        return None
