"""Helpers shared by the foundation integration tests: SQL access, waits, chain checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import Row, text

from caracal_api.app import routers
from tests.conftest import AUDIT_KEY, BOOTSTRAP_TOKEN, Api, base_settings

GLOBAL_CHAIN = "admin-audit::global"
CHAIN_COLUMNS = (
    "id, request_id, actor_id, actor_name, actor_scope, action, method, path, zone_id,"
    " entity_type, entity_id, status_code, payload_json, occurred_at, content_sha256,"
    " prev_content_sha256, chain_hmac, chain_seq"
)


def registered(method: str, template: str) -> bool:
    """Is `method template` (FastAPI path syntax) served by the app?"""
    for router in routers():
        for route in router.routes:
            if getattr(route, "path", None) == template and method in (
                getattr(route, "methods", None) or ()
            ):
                return True
    return False


def unique(prefix: str) -> str:
    return f"{prefix} {secrets.token_hex(4)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def open_api(
    database_dsn: str, redis_url: str, *, workers: bool = False, **overrides: Any
) -> AsyncIterator[Api]:
    """The app of `make_api`, for fixtures wider than one test (module-scoped apps)."""
    from caracal_api.admin_tokens.service import seed_bootstrap
    from caracal_api.app import create_app
    from caracal_api.runtime import Runtime

    settings = base_settings(database_dsn, redis_url, **overrides)
    redis = Redis.from_url(
        settings.redis_url or redis_url, socket_connect_timeout=1, socket_timeout=2
    )
    runtime = Runtime.build(
        settings, database_dsn, redis, embedded_postgres=False, embedded_redis=False
    )
    runtime.run_dispatcher = runtime.run_audit_ingest = workers
    try:
        await seed_bootstrap(runtime.engine, settings.admin_token)
        app = create_app(runtime)
        async with app.app.router.lifespan_context(app.app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://caracal.test") as c:
                yield Api(c, app, runtime)
    finally:
        await runtime.close()


# --- SQL ------------------------------------------------------------------------------------


async def fetch(api: Api, sql: str, **params: Any) -> Sequence[Row[Any]]:
    async with api.runtime.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).all()


async def fetch_one(api: Api, sql: str, **params: Any) -> Row[Any] | None:
    rows = await fetch(api, sql, **params)
    return rows[0] if rows else None


async def scalar(api: Api, sql: str, **params: Any) -> Any:
    async with api.runtime.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def execute(api: Api, sql: str, **params: Any) -> int:
    async with api.runtime.engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return int(result.rowcount or 0)


async def bootstrap_id(api: Api) -> str:
    digest = hashlib.sha256(BOOTSTRAP_TOKEN.encode()).digest()
    return str(
        await scalar(
            api,
            "SELECT id FROM admin_tokens WHERE token_sha256 = :d AND revoked_at IS NULL",
            d=digest,
        )
    )


# --- waiting --------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 2.0, interval: float = 0.02
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


async def records_of(api: Api, request_id: str) -> Sequence[Row[Any]]:
    return await fetch(
        api,
        f"SELECT {CHAIN_COLUMNS} FROM admin_audit_events WHERE request_id = :r"
        " ORDER BY occurred_at, id",
        r=request_id,
    )


async def wait_records(
    api: Api, request_id: str, count: int = 1, timeout: float = 1.0
) -> Sequence[Row[Any]]:
    """The admin-audit rows of one request, once `count` of them exist (failure records
    are written after the response, within 1 s: foundation §13.1)."""
    found: Sequence[Row[Any]] = []

    async def ready() -> bool:
        nonlocal found
        found = await records_of(api, request_id)
        return len(found) >= count

    await wait_until(ready, timeout=timeout)
    return found


def _chain_filter(key: str) -> tuple[str, dict[str, Any]]:
    if key == GLOBAL_CHAIN:
        return "zone_id IS NULL", {}
    return "zone_id = :zone", {"zone": key}


async def unchained(api: Api, key: str) -> int:
    where, params = _chain_filter(key)
    return int(
        await scalar(
            api,
            f"SELECT count(*) FROM admin_audit_events WHERE {where} AND chain_seq IS NULL",
            **params,
        )
    )


async def wait_chained(api: Api, key: str, timeout: float = 2.0) -> bool:
    async def done() -> bool:
        return await unchained(api, key) == 0

    return await wait_until(done, timeout=timeout)


async def chain_rows(api: Api, key: str) -> Sequence[Row[Any]]:
    where, params = _chain_filter(key)
    return await fetch(
        api,
        f"SELECT {CHAIN_COLUMNS} FROM admin_audit_events WHERE {where}"
        " AND chain_seq IS NOT NULL ORDER BY chain_seq",
        **params,
    )


# --- the content hash and the chain, recomputed from the spec text ------------------------

HASHED = (
    "id",
    "request_id",
    "actor_id",
    "actor_name",
    "actor_scope",
    "action",
    "method",
    "path",
    "zone_id",
    "entity_type",
    "entity_id",
    "status_code",
)
LEGACY_ORDER = (
    "rls_mode",
    "rls_zone_guc",
    "operator",
    "change_kind",
    "changed_fields",
    "secret_rotated",
    "dcr_registration_disabled",
    "dcr_shutdown_mode",
    "live_dcr_applications",
    "revoked_applications",
    "revoked_authority_records",
    "terminated_sessions",
    "revoked_delegations",
)


def _hash_text(values: dict[str, Any], payload: str, occurred: str) -> str:
    parts = ["" if values.get(name) is None else str(values[name]) for name in HASHED]
    parts += [payload, occurred]
    return hashlib.sha256("".join(p + "\x1f" for p in parts).encode("utf-8")).hexdigest()


def canonical_hash(values: dict[str, Any]) -> str:
    payload = values.get("payload_json")
    payload_text = (
        ""
        if payload is None
        else json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    )
    occurred = values["occurred_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _hash_text(values, payload_text, occurred)


def legacy_hash(values: dict[str, Any]) -> str:
    """Other writers' format: legacy key order, millisecond timestamps."""
    payload = values.get("payload_json")
    if payload is None:
        payload_text = ""
    else:
        known = [k for k in LEGACY_ORDER if k in payload]
        rest = sorted(
            (k for k in payload if k not in LEGACY_ORDER),
            key=lambda k: (len(k.encode()), k.encode()),
        )
        ordered = {k: payload[k] for k in known + rest}
        payload_text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    at = values["occurred_at"].astimezone(UTC)
    occurred = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return _hash_text(values, payload_text, occurred)


def chain_mac(content: str, prev: str, key: bytes = AUDIT_KEY) -> str:
    return hmac.new(key, f"{content}|{prev}".encode(), hashlib.sha256).hexdigest()


def assert_chain_intact(rows: Sequence[Row[Any]], *, key: bytes | None = AUDIT_KEY) -> None:
    """chain_seq 1..n, prev links, canonical content hashes, HMACs."""
    prev = ""
    for expected_seq, row in enumerate(rows, start=1):
        assert row.chain_seq == expected_seq, (row.chain_seq, expected_seq)
        assert (row.prev_content_sha256 or "") == prev
        values = row._asdict()
        assert row.content_sha256 == canonical_hash(values), row.id
        if key is not None:
            assert row.chain_hmac is not None
            assert len(row.chain_hmac) == 64
            assert all(c in "0123456789abcdef" for c in row.chain_hmac)
            assert row.chain_hmac == chain_mac(row.content_sha256, prev, key)
        prev = row.content_sha256


# --- cursors and lists ----------------------------------------------------------------------


def make_cursor(data: Any) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ts_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def list_all(api: Api, path: str, limit: int = 500, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a standard list, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await api.get(path, params=params, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("list did not end")


# --- a synchronous httpx transport into the in-process app (for the admin client) ---------


class LoopTransport(httpx.BaseTransport):
    """Lets a synchronous client, run in a worker thread, call the app on the test loop."""

    def __init__(self, api: Api, loop: asyncio.AbstractEventLoop) -> None:
        self.api = api
        self.loop = loop
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def forward() -> httpx.Response:
            return await self.api.client.request(
                request.method,
                request.url.copy_with(scheme="http", host="caracal.test"),
                headers=[(k, v) for k, v in request.headers.raw if k.lower() != b"host"],
                content=body,
            )

        response = asyncio.run_coroutine_threadsafe(forward(), self.loop).result(timeout=30)
        self.statuses.append(response.status_code)
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )
