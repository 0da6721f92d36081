"""Running the HTTP server with the graceful shutdown of foundation §14.6."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import FrameType

import uvicorn

from caracal_api.runtime import Runtime

log = logging.getLogger("caracal_api.server")


class DrainingServer(uvicorn.Server):
    """First SIGTERM/SIGINT: `/ready` answers 503 draining, serving continues for the
    drain delay, then the listener closes and in-flight work finishes within the grace.
    A second signal ends the delay at once."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._signals = 0
        self._delay_over = asyncio.Event()
        self.forced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            self.runtime.draining = True
            log.info("draining", extra={"delay_ms": self.runtime.settings.shutdown_drain_delay_ms})
            asyncio.get_event_loop().create_task(self._drain_then_exit())
        elif self._signals == 2:
            self._delay_over.set()
        else:
            self.force_exit = True
            self.forced = True

    async def _drain_then_exit(self) -> None:
        delay = self.runtime.settings.shutdown_drain_delay_ms / 1000
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._delay_over.wait(), delay)
        self.should_exit = True


def build_config(app: object, host: str, port: int, grace_ms: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, grace_ms // 1000),
        proxy_headers=False,
    )
