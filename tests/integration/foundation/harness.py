"""Helpers for the pipeline, body, authentication, authorization and rate-limit tests.

- `guard_envelopes(monkeypatch)`: every 4xx/5xx any test receives through `Api` (or a
  client from `client_as`) must be the JSON envelope of foundation §5 with `request_id`
  equal to the `x-request-id` header and no stack trace, driver name or SQL text.
- `route_registered` / `needs_route`: tests of routes from other domain packages run only
  when the route is registered in `caracal_api.app.routers()`.
- `serving(app)`: the app on a real 127.0.0.1 socket (uvicorn in this event loop).
- `ServeProcess`: `caracal-api serve` as a child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy import Row, text

from tests.conftest import KEK, REDIS_URL, Api, base_settings

REPO = Path(__file__).resolve().parents[3]
ID_RE = re.compile(r"^[A-Za-z0-9_.\-:]{1,128}$")
UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
V1_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# Text that must never reach a client (foundation §5, checklist item 15).
LEAKS = (
    "Traceback",
    'File "',
    "asyncpg",
    "psycopg",
    "sqlalchemy",
    "SQLAlchemy",
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    "SQLSTATE",
    "sqlstate",
    "site-packages",
    ".py:",
)


# --- the error envelope (checklist items 15 and 16) -----------------------------------------


def check_error_response(response: httpx.Response) -> dict[str, Any]:
    """The envelope of a 4xx/5xx response; fails the test when it is not one."""
    status = response.status_code
    assert response.headers.get("content-type", "").startswith("application/json"), (
        status,
        response.headers,
    )
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    assert isinstance(body.get("error_description"), str), body
    assert body["error_description"], body
    assert body.get("request_id") == response.headers["x-request-id"], body
    if "details" in body:
        assert isinstance(body["details"], dict), body
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text)
    return body


def guard_envelopes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check every error response a test gets through `Api.request`."""
    original = Api.request

    async def checked(self: Api, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await original(self, method, path, **kwargs)
        if response.status_code >= 400 and method.upper() != "HEAD":
            check_error_response(response)
        return response

    monkeypatch.setattr(Api, "request", checked)


async def _hook(response: httpx.Response) -> None:
    if response.status_code >= 400 and response.request.method != "HEAD":
        await response.aread()
        check_error_response(response)


def random_ip() -> str:
    """A client address no other test uses (the per-IP limiters key on it)."""
    a, b, c = secrets.token_bytes(3)
    return f"10.{a}.{b}.{max(c, 1)}"


@asynccontextmanager
async def client_as(api: Api, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the in-process app whose requests come from socket peer `ip`."""
    transport = httpx.ASGITransport(app=api.app, client=(ip, 40000))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://caracal.test",
        event_hooks={"response": [_hook]},
    ) as client:
        yield client


async def clear_of_minute_edge(margin: float = 6.0) -> None:
    """Start a rate-limit test early enough that its requests share one minute bucket."""
    into_minute = time.time() % 60
    if into_minute > 60 - margin:
        await asyncio.sleep(60 - into_minute + 0.2)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def open_api(database_dsn: str, redis_url: str, **overrides: Any) -> AsyncIterator[Api]:
    """The app `make_api` builds, for a module-scoped fixture (tests that only add rows)."""
    from caracal_api.admin_tokens.service import seed_bootstrap
    from caracal_api.app import create_app
    from caracal_api.runtime import Runtime

    settings = base_settings(database_dsn, redis_url, **overrides)
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    runtime = Runtime.build(
        settings, database_dsn, redis, embedded_postgres=False, embedded_redis=False
    )
    try:
        await seed_bootstrap(runtime.engine, settings.admin_token)
        app = create_app(runtime)
        async with app.app.router.lifespan_context(app.app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://caracal.test") as c:
                yield Api(c, app, runtime)
    finally:
        await runtime.close()


# --- routes of other domain packages ---------------------------------------------------


def _shape(template: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", template)


def route_registered(method: str, template: str) -> bool:
    """Is `method template` served? Parameter names are ignored (`{id}` = `{challengeId}`)."""
    from caracal_api.app import routers

    wanted = _shape(template)
    for router in routers():
        for route in router.routes:
            path = getattr(route, "path", None)
            methods = getattr(route, "methods", None) or ()
            if path is not None and _shape(path) == wanted and method in methods:
                return True
    return False


def needs_route(method: str, template: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not route_registered(method, template),
        reason=f"{method} {template} is not served by this build",
    )


APPLICATIONS = "/v1/zones/{zoneId}/applications"
APPLICATION = "/v1/zones/{zoneId}/applications/{id}"
CLIENT_SECRET = "/v1/zones/{zoneId}/applications/{id}/client-secret"
DCR = "/v1/zones/{zoneId}/applications/dcr"
APPROVE = "/v1/zones/{zoneId}/step-up-challenges/{id}/approve"
REJECT = "/v1/zones/{zoneId}/step-up-challenges/{id}/reject"
VALIDATE = "/v1/policies/validate"
TEMPLATES = "/v1/policy-templates"
POLICIES = "/v1/zones/{zoneId}/policies"
POLICY_SETS = "/v1/zones/{zoneId}/policy-sets"
PROVIDERS = "/v1/zones/{zoneId}/providers"
RESOURCES = "/v1/zones/{zoneId}/resources"

# A policy that passes the static validator and compiles (policies.md §2).
VALID_POLICY = (
    "# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\nrestrict := {}\n"
)


# --- SQL -----------------------------------------------------------------------------------


async def rows(api: Api, sql: str, **params: Any) -> Sequence[Row[Any]]:
    async with api.runtime.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).all()


async def value(api: Api, sql: str, **params: Any) -> Any:
    async with api.runtime.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


# --- a real socket -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """Serve `app` (its lifespan already entered) with uvicorn on a free local port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done():
                task.result()
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, val = line.partition(":")
            headers[name.strip().lower()] = val.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return RawResponse(status, headers, body)


async def raw_exchange(port: int, head: bytes, chunks: Sequence[bytes]) -> RawResponse:
    """Send a whole request (head, then every body chunk), then read the answer.

    The body is written completely before anything is read, as a simple client does: a
    server that stops reading early and closes would reset the connection here.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        return await asyncio.wait_for(_read_response(reader), 30)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


# --- `caracal-api serve` as a child process -------------------------------------------------


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        SECRET_STORE_KEK=KEK.hex(),
        HOST="127.0.0.1",
        LOG_LEVEL="info",
        SHUTDOWN_GRACE_MS="5000",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "caracal_api",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class ServeProcess:
    """One `caracal-api serve --no-workers` run; stdout/stderr kept in files."""

    env: dict[str, str]
    workdir: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    _files: list[Any] = field(default_factory=list)

    async def __aenter__(self) -> ServeProcess:
        self.port = free_port()
        run = secrets.token_hex(3)
        out = (self.workdir / f"serve-{run}.out").open("wb")
        err = (self.workdir / f"serve-{run}.err").open("wb")
        self._files = [out, err]
        env = {**self.env, "PORT": str(self.port), "CARACAL_DATA_DIR": str(self.workdir)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "caracal_api",
            "serve",
            "--no-workers",
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=err,
        )
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.proc.returncode is not None:
                    await self._collect()
                    raise AssertionError(f"serve exited {self.returncode}: {self.stderr}")
                try:
                    if (await client.get(self.url("/health"))).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    await self.stop()
                    raise AssertionError(f"serve did not become healthy: {self.stderr}")
                await asyncio.sleep(0.1)

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str, token: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.url(path), headers=bearer(token))

    async def request(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.request(method, self.url(path), headers=bearer(token), **kw)

    def stderr_so_far(self) -> str:
        return Path(self._files[1].name).read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc is None or self.returncode is not None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._collect()

    async def _collect(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self.returncode = self.proc.returncode
        for handle in self._files:
            handle.close()
        self.stdout = Path(self._files[0].name).read_text(errors="replace")
        self.stderr = Path(self._files[1].name).read_text(errors="replace")
