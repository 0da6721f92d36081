"""Outbox health (events.md §7) and the `caracal-api outbox status|requeue` logic (§3.5)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from caracal_api import metrics
from caracal_api.events import sql

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SEC = 5.0


@dataclass(frozen=True)
class OutboxHealth:
    pending: int
    dead: int
    oldest_pending_age: float
    oldest_dead_age: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def outbox_health(conn: AsyncConnection | AsyncSession) -> OutboxHealth:
    """Run the one health query on the given connection or session.

    `pending` counts rows waiting or in backoff, `dead` rows with `available_at =
    'infinity'`; ages are seconds (0 when there is no such row). The caller bounds the time.
    """
    row = (await conn.execute(sql.HEALTH)).one()
    return OutboxHealth(
        pending=int(row.pending),
        dead=int(row.dead),
        oldest_pending_age=float(row.oldest_pending_age),
        oldest_dead_age=float(row.oldest_dead_age),
    )


def set_outbox_gauges(health: OutboxHealth) -> None:
    metrics.OUTBOX_PENDING.set(health.pending)
    metrics.OUTBOX_DEAD.set(health.dead)
    metrics.OUTBOX_OLDEST_PENDING_AGE.set(health.oldest_pending_age)
    metrics.OUTBOX_OLDEST_DEAD_AGE.set(health.oldest_dead_age)


async def sample_outbox_metrics(
    engine: AsyncEngine, limit_sec: float = HEALTH_TIMEOUT_SEC
) -> OutboxHealth | None:
    """For `/metrics`: refresh the outbox gauges; on failure keep the last values and set
    `caracal_api_outbox_health_up` to 0. Never raises."""
    try:
        async with asyncio.timeout(limit_sec):
            async with engine.connect() as conn:
                health = await outbox_health(conn)
    except Exception as exc:
        log.warning("outbox health query failed", extra={"error": type(exc).__name__})
        metrics.OUTBOX_HEALTH_UP.set(0)
        return None
    set_outbox_gauges(health)
    metrics.OUTBOX_HEALTH_UP.set(1)
    return health


async def outbox_status(engine: AsyncEngine) -> dict[str, Any]:
    """`caracal-api outbox status`: the §7 figures plus dead rows per stream."""
    async with engine.connect() as conn:
        health = await outbox_health(conn)
        dead_rows = (await conn.execute(sql.DEAD_BY_STREAM)).all()
    out = health.as_dict()
    out["dead_by_stream"] = {row.stream_name: int(row.dead) for row in dead_rows}
    return out


async def requeue(engine: AsyncEngine, stream: str | None = None, id: str | None = None) -> int:
    """`caracal-api outbox requeue [--stream S] [--id ID]`: dead rows become pending again
    (`available_at = now()`, `attempts = 0`). Returns how many rows changed."""
    async with engine.begin() as conn:
        result = await conn.execute(sql.REQUEUE, {"stream": stream, "id": id})
    return int(result.rowcount or 0)
