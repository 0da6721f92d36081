"""What an endpoint receives: the request's facts plus the unit-of-work entry points."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from caracal_api.audit import records
from caracal_api.auth.actor import Actor
from caracal_api.kit import driver, jsonio, uow
from caracal_api.kit.driver import Tx
from caracal_api.kit.query import QueryReader
from caracal_api.kit.rawread import RawSQL, raw_reader
from caracal_api.kit.schemas import validate_body
from caracal_api.kit.uow import WriteContext, run_in_transaction

if TYPE_CHECKING:
    from caracal_api.runtime import Runtime

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_LABEL_EXTRA = frozenset(" @._+:'-")


def actor_label(header: bytes | None, actor: Actor) -> str:
    """`x-caracal-authorized-by` when it is a plain label, else `admin:<token id>` (§11)."""
    if header is not None:
        try:
            value = header.decode("utf-8")
        except UnicodeDecodeError:
            value = ""
        if 1 <= len(value) <= 256 and all(
            ch in _LABEL_EXTRA or unicodedata.category(ch)[0] in "LN" for ch in value
        ):
            return value
    return f"admin:{actor.id}"


@dataclass
class RequestState:
    """Filled by the pipeline before the handler runs."""

    request_id: str
    method: str
    path: str
    client_ip: str
    headers: dict[bytes, bytes]
    route: str = "unmatched"
    actor: Actor | None = None
    params: dict[str, str] = field(default_factory=dict)
    raw_body: Any = jsonio.ABSENT
    audit_recorded: bool = False

    @property
    def facts(self) -> records.RequestFacts:
        return records.RequestFacts(self.request_id, self.method, self.path, self.actor)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content)


class Call:
    """One request as seen by an endpoint."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.state: RequestState = request.scope["state"]["caracal"]
        self.runtime: Runtime = request.scope["state"]["runtime"]
        self._query: QueryReader | None = None

    @property
    def actor(self) -> Actor:
        assert self.state.actor is not None
        return self.state.actor

    @property
    def request_id(self) -> str:
        return self.state.request_id

    @property
    def path(self) -> dict[str, str]:
        return self.state.params

    @property
    def raw_body(self) -> Any:
        return self.state.raw_body

    @property
    def query(self) -> QueryReader:
        if self._query is None:
            self._query = QueryReader(self.request.scope.get("query_string", b""))
        return self._query

    def body(self, model: type[M], *, code: str) -> M:
        return validate_body(model, self.state.raw_body, code)

    def optional_body(self, model: type[M], *, code: str) -> M | None:
        """For routes whose body is optional: absent → None."""
        if jsonio.is_absent(self.state.raw_body):
            return None
        return validate_body(model, self.state.raw_body, code)

    def write_context(self) -> WriteContext:
        state = self.state
        if state.actor is None:
            # Public routes (the OAuth callback) write with no token: the admin-audit
            # record carries NULL actor fields and services never read `ctx.actor`.
            return WriteContext(
                actor=None,  # type: ignore[arg-type]
                request_id=state.request_id,
                actor_label="public",
                operator_header=False,
                facts=state.facts,
            )
        return WriteContext(
            actor=state.actor,
            request_id=state.request_id,
            actor_label=actor_label(state.headers.get(b"x-caracal-authorized-by"), state.actor),
            operator_header=state.headers.get(b"x-caracal-created-via") == b"operator",
            facts=state.facts,
            body=None if jsonio.is_absent(state.raw_body) else state.raw_body,
        )

    async def run(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        status_code: int = 200,
        audit_zone: Callable[[T], str | None] | None = None,
        on_driver: bool = False,
    ) -> T:
        """Run a service function in one transaction with its admin-audit success record.

        `on_driver`: the function takes a `kit.driver.Tx` and uses only driver statements,
        so its transaction skips the ORM session (kit.driver).
        """
        runtime = self.runtime
        result, ctx = await run_in_transaction(
            uow.on_driver(runtime.engine) if on_driver else uow.in_session(runtime.sessionmaker),
            self.write_context,
            fn,
            args,
            status_code=status_code,
            audit_zone=audit_zone,
        )
        self.state.audit_recorded = True
        for callback in ctx._after_commit:
            callback()
        if ctx.wrote_outbox:
            self.runtime.wake_dispatcher()
        self.runtime.chains.schedule(ctx.touched_chains)
        return result

    async def record_success(self, status_code: int, response_body: Any = None) -> None:
        """Audit a mutation that writes nothing else (validate, simulate, discovery, ...)."""

        async def nothing(_session: AsyncSession, _ctx: WriteContext) -> Any:
            return response_body

        await self.run(nothing, status_code=status_code)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for read-only work; closed before the response starts."""
        async with self.runtime.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def raw_read(self) -> AsyncIterator[RawSQL]:
        """One-statement reads on the driver connection, no transaction (hot list routes)."""
        async with raw_reader(self.runtime.engine) as reader:
            yield reader

    def respond(
        self, data: Any, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        if status_code == 204:
            return Response(status_code=204, headers=headers)
        return JSONResponse(data, status_code=status_code, headers=headers)


def get_call(request: Request) -> Call:
    return Call(request)


async def via_operator(session: Tx, ctx: WriteContext, zone_id: str | None) -> bool:
    """`*_via_operator` (§11): the operator header and the zone's coauthor badge."""
    if not ctx.operator_header:
        return False
    if zone_id is None:
        return True
    badge = await (await driver.raw(session)).fetchval(
        "SELECT operator_coauthor_badge FROM zones WHERE id = $1", zone_id
    )
    return True if badge is None else bool(badge)
