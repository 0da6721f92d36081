"""create_app(): routers, the request pipeline and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from caracal_api import lifecycle
from caracal_api.admin_tokens.endpoints import router as admin_tokens_router
from caracal_api.applications.endpoints import router as applications_router
from caracal_api.applications.sweep import DcrSweepHook
from caracal_api.audit.endpoints import router as audit_router
from caracal_api.grants.endpoints import router as grants_router
from caracal_api.kit.pipeline import Pipeline
from caracal_api.kit.routing import CaracalRouter
from caracal_api.openapi import build_openapi
from caracal_api.ops.endpoints import router as ops_router
from caracal_api.policies.endpoints import router as policies_router
from caracal_api.policies.hook import RegoEngineHook
from caracal_api.policy_sets.endpoints import router as policy_sets_router
from caracal_api.provider_connections.endpoints import router as provider_connections_router
from caracal_api.providers.endpoints import router as providers_router
from caracal_api.resources.endpoints import router as resources_router
from caracal_api.runtime import Runtime
from caracal_api.step_up.endpoints import router as step_up_router
from caracal_api.templates.endpoints import router as templates_router
from caracal_api.zone_events.endpoints import router as zone_events_router
from caracal_api.zones.endpoints import router as zones_router

VERSION = "0.1.0"


def routers() -> list[CaracalRouter]:
    """Every router of the service; a domain package adds its own here."""
    return [
        ops_router,
        zones_router,
        admin_tokens_router,
        audit_router,
        applications_router,
        providers_router,
        resources_router,
        grants_router,
        provider_connections_router,
        step_up_router,
        zone_events_router,
        policies_router,
        policy_sets_router,
        templates_router,
    ]


def hooks() -> list[lifecycle.Hook]:
    """Background work of a process, started in order and stopped in reverse."""
    return [
        lifecycle.StartupChecks(),
        RegoEngineHook(),
        lifecycle.ChainSweep(),
        lifecycle.DispatcherHook(),
        lifecycle.AuditIngestHook(),
        DcrSweepHook(),
    ]


def create_app(runtime: Runtime, *, extra_hooks: list[lifecycle.Hook] | None = None) -> Pipeline:
    """The ASGI application of one process."""
    started: list[lifecycle.Hook] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for hook in [*hooks(), *(extra_hooks or [])]:
            await hook.start(runtime)
            started.append(hook)
        try:
            yield
        finally:
            grace = runtime.settings.shutdown_grace_ms / 1000
            for hook in reversed(started):
                await hook.stop(runtime, grace)
            started.clear()
            await runtime.drain_background()

    app = FastAPI(
        title="caracal-api",
        version=VERSION,
        description="Control plane of Caracal: zones, applications, providers, resources, "
        "policies, policy sets, grants and the events around them.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    for router in routers():
        # The routes are used as declared (no copies), so their auth class stays on them.
        app.router.routes.extend(router.routes)
    app.openapi = _cached(lambda: build_openapi(app))  # type: ignore[method-assign]
    return Pipeline(app, runtime)


def _cached(build: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    cache: dict[str, Any] = {}

    def get() -> dict[str, Any]:
        if "doc" not in cache:
            cache["doc"] = build()
        return cache["doc"]

    return get
