"""The request pipeline of foundation §2, as the outermost ASGI application.

It owns everything every route shares: request ids, security headers, rate limits,
authentication, route resolution, authorization gates, path parameters, body transport,
the error envelope, metrics, the access log and failure audit records. FastAPI is used for
declaring routes, dependencies and the OpenAPI document; the pipeline hands the chosen
route its request directly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.types import Message, Receive, Scope, Send

from caracal_api.audit import records
from caracal_api.auth.gates import check_gates
from caracal_api.auth.tokens import AuthUnavailable, bearer_of
from caracal_api.errors import (
    CaracalError,
    InternalError,
    InvalidAdminToken,
    InvalidParams,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from caracal_api.kit import jsonio
from caracal_api.kit.call import Call, RequestState
from caracal_api.kit.db import unavailable_error
from caracal_api.kit.ids import is_valid_id, uuid7
from caracal_api.kit.routing import Match, RouteTable
from caracal_api.kit.transport import read_json_body
from caracal_api.metrics import ADMIN_AUDIT_FAILURES, HTTP_DURATION, HTTP_REQUESTS

if TYPE_CHECKING:
    from caracal_api.runtime import Runtime

log = logging.getLogger("caracal_api.http")
access_log = logging.getLogger("caracal_api.access")

V1_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ShutdownCancelled(ServiceUnavailable):
    description = "The process shut down before the request finished; retry it."


def client_ip(scope: Scope, headers: list[tuple[bytes, bytes]], trust_proxy: int) -> str:
    peer = scope.get("client")
    peer_ip = peer[0] if peer else "unknown"
    if trust_proxy <= 0:
        return peer_ip
    entries: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            entries.extend(e.strip() for e in value.decode("latin-1").split(","))
    if len(entries) < trust_proxy:
        return peer_ip
    candidate = entries[-trust_proxy]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return peer_ip
    return candidate


class Responder:
    """Wraps `send`: adds shared headers, strips HEAD bodies, remembers the status."""

    def __init__(self, send: Send, request_id: str, v1: bool, head: bool) -> None:
        self._send = send
        self.request_id = request_id.encode()
        self.v1 = v1
        self.head = head
        self.status = 0
        self.started = False
        self.finished_at = 0.0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
            ]
            headers.append((b"x-request-id", self.request_id))
            if self.v1:
                headers.extend(V1_HEADERS)
            message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and self.head:
            message = {**message, "body": b""}
        await self._send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished_at = time.perf_counter()

    async def error(self, exc: CaracalError) -> None:
        body = jsonio.dumps(exc.body(self.request_id.decode()))
        headers = [(b"content-type", b"application/json")]
        headers.extend((k.lower().encode(), v.encode()) for k, v in exc.headers.items())
        if not self.head:
            headers.append((b"content-length", str(len(body)).encode()))
        await self({"type": "http.response.start", "status": exc.status, "headers": headers})
        await self({"type": "http.response.body", "body": body})


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Pipeline:
    def __init__(self, app: FastAPI, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.table = RouteTable(app.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        raw_headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        headers = {k.lower(): v for k, v in raw_headers}
        request_id = _request_id(headers.get(b"x-request-id"))
        raw_path = _raw_path(scope)
        v1 = raw_path == "/v1" or raw_path.startswith("/v1/")
        method = scope["method"]
        responder = Responder(send, request_id, v1, method == "HEAD")
        state = RequestState(
            request_id=request_id,
            method=method,
            path=raw_path,
            client_ip=client_ip(scope, raw_headers, self.runtime.settings.trust_proxy),
            headers=headers,
        )
        scope["state"] = {"caracal": state, "runtime": self.runtime}
        scope["app"] = self.app
        try:
            if v1:
                await self._v1(scope, receive, responder, state)
            else:
                await self._outside(scope, receive, responder, state)
        except asyncio.CancelledError:
            # Shutdown: the server cancels what still runs when SHUTDOWN_GRACE_MS is over.
            # Answer with the envelope instead of the server's bare 500, then end the task.
            if not self.runtime.draining or responder.started:
                raise
            await responder.error(ShutdownCancelled())
        except Exception as exc:
            await self._fail(responder, state, exc)
        finally:
            self._observe(state, responder, started)
        if v1 and responder.status >= 400 and responder.status != 429:
            self.runtime.spawn(self._record_failure(state, responder.status))

    async def _fail(self, responder: Responder, state: RequestState, exc: Exception) -> None:
        error: CaracalError | None
        if isinstance(exc, CaracalError):
            error = exc
        elif isinstance(exc, AuthUnavailable):
            error = exc.error
        else:
            error = unavailable_error(exc)
            if error is None:
                log.error("unhandled error", exc_info=exc, extra={"request_id": state.request_id})
                error = InternalError()
            else:
                log.warning(
                    "database unavailable",
                    extra={"request_id": state.request_id, "error": type(exc).__name__},
                )
        if responder.started:
            log.error(
                "error after the response started",
                exc_info=exc,
                extra={"request_id": state.request_id},
            )
            return
        await responder.error(error)

    async def _v1(
        self, scope: Scope, receive: Receive, responder: Responder, state: RequestState
    ) -> None:
        runtime = self.runtime
        retry = await runtime.limiters.ip.hit(state.client_ip)
        if retry is not None:
            raise RateLimited(retry)
        match = self.table.resolve(state.path)
        endpoint = match.template.endpoint_for(state.method) if match else None
        if match is not None:
            state.route = match.template.template
        public = endpoint is not None and endpoint.auth == "public"
        if not public:
            await self._authenticate(state)
            assert state.actor is not None
            retry = await runtime.limiters.token.hit(state.actor.id)
            if retry is not None:
                raise RateLimited(retry)
        if match is None:
            raise NotFound()
        if endpoint is None:
            allowed = ", ".join(match.template.allowed)
            raise MethodNotAllowedWith(allowed)
        if not public:
            assert state.actor is not None
            await check_gates(
                state.actor,
                endpoint.auth,
                state.method,
                match.template.template,
                match.zone_param,
                runtime.is_reserved_zone,
            )
        await self._dispatch(scope, receive, responder, state, match, endpoint)

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        responder: Responder,
        state: RequestState,
        match: Match,
        endpoint: Any,
    ) -> None:
        if not match.params_valid:
            raise InvalidParams()
        state.params = match.params
        if state.method in BODY_METHODS:
            state.raw_body = await read_json_body(
                state.headers, receive, self.runtime.settings.api_body_limit_bytes
            )
            receive = _empty_receive
        scope["path_params"] = dict(match.params)
        scope["route"] = endpoint.route
        if state.method == "HEAD":
            scope["method"] = "GET"
        # Every endpoint takes exactly one `Call`; calling it directly skips FastAPI's
        # per-request dependency solving (a thread-pool hop for the sync dependency), which
        # cost more than the rest of a `/health` request.
        response = await endpoint.route.endpoint(Call(Request(scope, receive)))
        await response(scope, receive, responder)

    async def _authenticate(self, state: RequestState) -> None:
        token = bearer_of(_header_text(state.headers.get(b"authorization")))
        actor = None
        if token is not None:
            actor = await self.runtime.verifier.verify(token)
        if actor is None:
            retry = await self.runtime.limiters.auth_fail.hit(state.client_ip)
            if retry is not None:
                raise RateLimited(retry)
            raise InvalidAdminToken()
        state.actor = actor

    async def _outside(
        self, scope: Scope, receive: Receive, responder: Responder, state: RequestState
    ) -> None:
        match = self.table.resolve(state.path)
        if match is None:
            raise NotFound()
        state.route = match.template.template
        endpoint = match.template.endpoint_for(state.method)
        if endpoint is None:
            raise MethodNotAllowedWith(", ".join(match.template.allowed))
        await self._dispatch(scope, receive, responder, state, match, endpoint)

    def _observe(self, state: RequestState, responder: Responder, started: float) -> None:
        ended = responder.finished_at or time.perf_counter()
        duration = ended - started
        status = str(responder.status or 500)
        HTTP_REQUESTS.labels(state.method, state.route, status).inc()
        HTTP_DURATION.labels(state.method, state.route, status).observe(duration)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "request",
                extra={
                    "request_id": state.request_id,
                    "method": state.method,
                    "route": state.route,
                    "status": responder.status,
                    "duration_ms": round(duration * 1000, 3),
                    "actor_id": state.actor.id if state.actor else None,
                },
            )
        if (
            200 <= responder.status < 300
            and state.method in BODY_METHODS
            and not state.audit_recorded
            and state.path.startswith("/v1/")
        ):
            log.error(
                "mutation answered without an admin-audit record",
                extra={"request_id": state.request_id, "route": state.route},
            )

    async def _record_failure(self, state: RequestState, status: int) -> None:
        """Best-effort failure record in its own transaction, after the response (§13.1)."""
        try:
            async with self.runtime.engine.begin() as conn:
                occurred_at = await records.transaction_now(conn)
                record = records.build_record(
                    state.facts,
                    status_code=status,
                    occurred_at=occurred_at,
                    payload=records.rls_payload(state.actor),
                )
                await records.insert(conn, record)
            self.runtime.chains.schedule([records.chain_key(record["zone_id"])])
        except Exception as exc:
            ADMIN_AUDIT_FAILURES.inc()
            log.warning(
                "failure record not written",
                extra={"request_id": state.request_id, "error": type(exc).__name__},
            )


class MethodNotAllowedWith(MethodNotAllowed):
    def __init__(self, allowed: str) -> None:
        super().__init__(headers={"Allow": allowed})


def _request_id(value: bytes | None) -> str:
    if value is not None:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if is_valid_id(text):
            return text
    return uuid7()


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        text = raw.decode("latin-1")
        return text.split("?", 1)[0]
    return str(scope.get("path", "/"))


def _header_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
