"""A dispatcher in its own process that stops forever between XADD and mark.

Used by the crash test: the test kills this process with SIGKILL once the marker file
exists, leaving a published but unmarked row behind.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import create_async_engine

from caracal_api.config import Settings
from caracal_api.events.dispatcher import Dispatcher


async def main(dsn: str, redis_url: str, marker: str) -> None:
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    redis = aioredis.from_url(redis_url)
    settings = Settings(worker_id=f"doomed-{os.getpid()}", outbox_lock_sec=2, outbox_poll_ms=50)
    dispatcher = Dispatcher(settings, engine, redis, listen=False)

    async def freeze(_rows: list[Any]) -> None:
        Path(marker).write_text("published", encoding="utf-8")
        await asyncio.sleep(3600)

    dispatcher.after_publish = freeze
    await dispatcher.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
