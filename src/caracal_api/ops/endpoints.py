"""Routes outside `/v1`: health, readiness, metrics and the local docs (foundation §14)."""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path

from fastapi import Depends
from prometheus_client import generate_latest
from sqlalchemy import text
from starlette.responses import FileResponse, HTMLResponse, Response

from caracal_api.errors import NotFound, RateLimited
from caracal_api.events.health import outbox_health, sample_outbox_metrics
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.routing import CaracalRouter
from caracal_api.metrics import ADMIN_AUDIT_UNCHAINED, REGISTRY
from caracal_api.ops.errors import DependencyDown, Draining, MetricsUnauthorized, OutboxDeadMessages

router = CaracalRouter(tags=["operations"])

CHECK_TIMEOUT = 5.0
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/health", auth="public", include_in_schema=False)
async def health(call: Call = Depends(get_call)) -> Response:
    """Liveness: touches no dependency."""
    return call.respond({"ok": True})


@router.get("/ready", auth="public", include_in_schema=False)
async def ready(call: Call = Depends(get_call)) -> Response:
    """Readiness: database, Redis, outbox health and dead rows, in that order."""
    runtime = call.runtime
    retry = await runtime.limiters.ready.hit(call.state.client_ip)
    if retry is not None:
        raise RateLimited(retry)
    if runtime.draining:
        raise Draining()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        raise DependencyDown(
            "postgres_unreachable", "postgres", "PostgreSQL is unreachable."
        ) from None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            pong = await runtime.redis.ping()
    except Exception:
        pong = False
    if pong is not True:
        raise DependencyDown("redis_unreachable", "redis", "Redis is unreachable.")
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), runtime.engine.connect() as conn:
            health_figures = await outbox_health(conn)
    except Exception:
        raise DependencyDown(
            "outbox_unreachable", "postgres", "The outbox cannot be read."
        ) from None
    limit = runtime.settings.api_ready_outbox_dead_max
    if health_figures.dead > limit:
        raise OutboxDeadMessages(health_figures.dead, limit)
    return call.respond(
        {
            "ok": True,
            "postgres": "embedded" if runtime.embedded_postgres else "external",
            "redis": "embedded" if runtime.embedded_redis else "external",
            "workers": {
                "dispatcher": runtime.run_dispatcher,
                "audit_ingest": runtime.run_audit_ingest,
            },
        }
    )


def _metrics_allowed(call: Call) -> bool:
    settings = call.runtime.settings
    expected = settings.metrics_bearer
    if expected is None:
        return not settings.production
    given = call.state.headers.get(b"authorization", b"")
    wanted = f"Bearer {expected}".encode()
    return len(given) == len(wanted) and hmac.compare_digest(given, wanted)


async def _sample_unchained(call: Call) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), call.runtime.engine.connect() as conn:
            count = (
                await conn.execute(
                    text("SELECT count(*) FROM admin_audit_events WHERE chain_seq IS NULL")
                )
            ).scalar_one()
        ADMIN_AUDIT_UNCHAINED.set(count)
    except Exception:
        return


@router.get("/metrics", auth="public", include_in_schema=False)
async def metrics(call: Call = Depends(get_call)) -> Response:
    """Prometheus text format."""
    if not _metrics_allowed(call):
        raise MetricsUnauthorized()
    await sample_outbox_metrics(call.runtime.engine, CHECK_TIMEOUT)
    await _sample_unchained(call)
    return Response(generate_latest(REGISTRY), media_type=METRICS_CONTENT_TYPE)


# --- documentation, served from packaged files (no CDN) --------------------------------


def _assets_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


ASSETS = frozenset(
    {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>caracal-api</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon-32x32.png"></head>
<body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", validatorUrl: null,
  deepLinking: true});
</script></body></html>
"""


def _docs_enabled(call: Call) -> None:
    if not call.runtime.settings.api_enable_docs:
        raise NotFound()


@router.get("/docs", auth="public", include_in_schema=False)
async def docs(call: Call = Depends(get_call)) -> Response:
    """Interactive API documentation."""
    _docs_enabled(call)
    return HTMLResponse(DOCS_PAGE)


@router.get("/docs/assets/{name}", auth="public", include_in_schema=False)
async def docs_asset(call: Call = Depends(get_call)) -> Response:
    """Static files of the documentation page."""
    _docs_enabled(call)
    name = call.path["name"]
    if name not in ASSETS:
        raise NotFound()
    return FileResponse(_assets_dir() / name)


@router.get("/openapi.json", auth="public", include_in_schema=False)
async def openapi(call: Call = Depends(get_call)) -> Response:
    """The OpenAPI 3.1 document."""
    _docs_enabled(call)
    return call.respond(call.request.app.openapi())
