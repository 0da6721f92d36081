"""The Rego engine's place in the process: started with the app, reached through the runtime."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from caracal_api.policies.engine import RegoEngine

if TYPE_CHECKING:
    from caracal_api.runtime import Runtime

log = logging.getLogger("caracal_api.rego")

SERVICE_KEY = "rego"


class RegoEngineHook:
    """Start the worker pool and check the embedded contract before serving (§3.1, §3.3)."""

    async def start(self, runtime: Runtime) -> None:
        settings = runtime.settings
        engine = RegoEngine(settings.rego_workers, settings.rego_timeout_ms)
        await engine.start()
        try:
            await engine.self_check()
        except Exception:
            log.critical("decision contract self-check failed; refusing to start")
            await engine.stop()
            raise
        runtime.services[SERVICE_KEY] = engine

    async def stop(self, runtime: Runtime, grace: float) -> None:
        engine = runtime.services.pop(SERVICE_KEY, None)
        if isinstance(engine, RegoEngine):
            await engine.stop()


def rego_engine(runtime: Runtime) -> RegoEngine:
    engine = runtime.services.get(SERVICE_KEY)
    if not isinstance(engine, RegoEngine):
        raise RuntimeError("the Rego engine is not running")
    return engine
