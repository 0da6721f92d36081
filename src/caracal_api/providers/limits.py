"""Route-specific Redis limiters (objects.md §1.7), one instance per process.

Built on `auth.ratelimit.BurstLimiter` (fails open and counts bypasses like foundation §8)
and kept in `Runtime.services` so its fail-open back-off state survives between requests.
"""

from __future__ import annotations

from typing import Any

from caracal_api.auth.ratelimit import BurstLimiter

ROUTE_LIMIT = 10
WINDOWS = {"dcr": 1, "providertest": 60, "providerdiscovery": 60}


def limiter(runtime: Any, name: str) -> BurstLimiter:
    return runtime.service(
        f"limiter:{name}", lambda: BurstLimiter(name, WINDOWS[name], ROUTE_LIMIT, runtime.redis)
    )


async def hit(runtime: Any, name: str, subject: str) -> int | None:
    """None when allowed, else the Retry-After seconds (the key's window)."""
    return await limiter(runtime, name).hit(f"rl:{name}:{subject}")
