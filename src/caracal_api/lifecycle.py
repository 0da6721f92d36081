"""Background work started with the app and stopped before its pools close.

A hook is an object with `async start(runtime)` and `async stop(runtime, grace)`. Domain
packages contribute hooks (the Rego engine, the DCR expiry sweep, ...) through `app.HOOKS`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from caracal_api.runtime import Runtime

log = logging.getLogger("caracal_api.lifecycle")


class Hook(Protocol):
    async def start(self, runtime: Runtime) -> None: ...

    async def stop(self, runtime: Runtime, grace: float) -> None: ...


class ChainSweep:
    """Every second, chain what is still unchained (failure records, crashed writers)."""

    interval = 1.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def start(self, runtime: Runtime) -> None:
        if runtime.run_dispatcher:
            self._task = asyncio.create_task(self._loop(runtime))

    async def _loop(self, runtime: Runtime) -> None:
        while True:
            await runtime.chains.sweep()
            await asyncio.sleep(self.interval)

    async def stop(self, runtime: Runtime, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class DispatcherHook:
    def __init__(self) -> None:
        self._dispatcher: object | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, runtime: Runtime) -> None:
        if not runtime.run_dispatcher:
            return
        from caracal_api.events.dispatcher import Dispatcher

        dispatcher = Dispatcher(
            runtime.settings, runtime.engine, runtime.redis, listen_dsn=runtime.session_dsn
        )
        self._dispatcher = dispatcher
        runtime.services["dispatcher"] = dispatcher
        self._task = asyncio.create_task(dispatcher.run())

    async def stop(self, runtime: Runtime, grace: float) -> None:
        from caracal_api.events.dispatcher import Dispatcher

        if isinstance(self._dispatcher, Dispatcher):
            await self._dispatcher.stop(grace)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class AuditIngestHook:
    def __init__(self) -> None:
        self._worker: object | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, runtime: Runtime) -> None:
        if not runtime.run_audit_ingest:
            return
        try:
            from caracal_api.events.audit_ingest import AuditIngest
        except ImportError:
            log.warning("audit ingest worker unavailable in this build")
            return
        worker = AuditIngest(runtime.settings, runtime.engine, runtime.redis)
        self._worker = worker
        runtime.services["audit_ingest"] = worker
        self._task = asyncio.create_task(worker.run())

    async def stop(self, runtime: Runtime, grace: float) -> None:
        worker = self._worker
        if worker is not None:
            await worker.stop(grace)  # type: ignore[attr-defined]
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class StartupChecks:
    """Build what needs the secret key and egress settings at start, so a bad key stops
    the process before it serves instead of failing its first request."""

    async def start(self, runtime: Runtime) -> None:
        from caracal_api.kit.egress import egress_of
        from caracal_api.secret_store.service import secret_store_of

        secret_store_of(runtime)
        egress_of(runtime)

    async def stop(self, runtime: Runtime, grace: float) -> None:
        return None
