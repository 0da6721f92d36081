"""Shared helpers of the fault tests: process environments, an HTTP client, SQL, streams."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.harness import ServerProcess, server_env

TOKEN = "cat_faults-" + secrets.token_hex(20)
KEK_HEX = secrets.token_hex(32)
AUDIT_KEY = secrets.token_bytes(32)
STREAMS_KEY = secrets.token_bytes(32)


def caracal_env(dsn: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a caracal-api process on the given services."""
    values = {
        "DATABASE_URL": dsn,
        "CARACAL_ADMIN_TOKEN": TOKEN,
        "SECRET_STORE_KEK": KEK_HEX,
        "AUDIT_HMAC_KEY": AUDIT_KEY.hex(),
        "STREAMS_HMAC_KEY": STREAMS_KEY.hex(),
        "LOG_LEVEL": "warning",
        **extra,
    }
    if redis_url is not None:
        values["REDIS_URL"] = redis_url
    return server_env(values)


@contextmanager
def running(
    env: dict[str, str], workdir: Path, *args: str, healthy: bool = True
) -> Iterator[ServerProcess]:
    """A `caracal-api <args>` process, stopped (SIGTERM, then SIGKILL) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = ServerProcess(env, workdir, args=args or ("serve",)).start()
    try:
        if healthy:
            process.wait_healthy(timeout=60)
        yield process
    finally:
        process.stop(timeout=20)


def kill(process: ServerProcess) -> None:
    """SIGKILL: no shutdown path runs, as when a host or container dies."""
    assert process.process is not None
    process.process.kill()
    process.process.wait(10)


def unhandled_errors(server: ServerProcess) -> list[str]:
    """Log lines of requests that ended in a 500 (`unhandled error`, always a bug)."""
    return [line for line in server.stdout().splitlines() if '"unhandled error"' in line]


def client(server: ServerProcess, timeout: float = 30.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
    )


async def created(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetch(query, *args)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def execute(dsn: str, query: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def outbox_rows(dsn: str, where: str = "true", *args: Any) -> list[asyncpg.Record]:
    return await fetch(
        dsn,
        "SELECT id, stream_name, payload_json, attempts, dispatched_at IS NOT NULL AS dispatched,"
        " available_at = 'infinity' AS dead, last_error FROM event_outbox WHERE " + where,
        *args,
    )


def stream_signature(stream: str, fields: dict[str, str], key: bytes) -> str:
    """`_sig` as an independent consumer computes it (docs/events.md)."""
    text = stream + "\n"
    for name in sorted((n for n in fields if n != "_sig"), key=str.encode):
        text += f"{name}={fields[name]}\n"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def expected_fields(outbox_id: str, payload: dict[str, Any]) -> dict[str, str]:
    """The published fields of an outbox row, without `_sig` (events.md §3.3, §4.2)."""
    fields = {"outbox_id": outbox_id}
    for name, value in payload.items():
        if value is None:
            continue
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        else:
            fields[name] = str(value)
    return fields


def decode_entries(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in entries]


def check_stream(
    stream: str, entries: list[dict[str, str]], rows: list[asyncpg.Record]
) -> dict[str, int]:
    """Every row published with its exact fields and a valid `_sig`; repeats only identical.

    Returns `{"rows": n, "entries": m, "duplicates": m - distinct}`.
    """
    by_id: dict[str, list[dict[str, str]]] = {}
    for fields in entries:
        assert fields.get("_sig") == stream_signature(stream, fields, STREAMS_KEY), fields
        by_id.setdefault(fields["outbox_id"], []).append(fields)
    wanted = {
        row["id"]: expected_fields(row["id"], json.loads(row["payload_json"])) for row in rows
    }
    missing = set(wanted) - set(by_id)
    assert not missing, f"{len(missing)} outbox rows never reached {stream}"
    unknown = set(by_id) - set(wanted)
    assert not unknown, f"{len(unknown)} entries on {stream} match no outbox row"
    for outbox_id, copies in by_id.items():
        for fields in copies:
            body = {k: v for k, v in fields.items() if k != "_sig"}
            assert body == wanted[outbox_id], (outbox_id, body, wanted[outbox_id])
    return {
        "rows": len(wanted),
        "entries": len(entries),
        "duplicates": len(entries) - len(by_id),
    }
