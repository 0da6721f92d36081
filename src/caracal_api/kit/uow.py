"""The unit-of-work runner: one transaction per mutation, its audit record, retries (§12)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caracal_api.audit import records
from caracal_api.auth.actor import Actor
from caracal_api.kit.db import is_retryable
from caracal_api.kit.driver import DriverTx, Tx
from caracal_api.kit.rawread import driver_transaction

P = ParamSpec("P")
T = TypeVar("T")

MAX_ATTEMPTS = 3
# Set in a session's `info` by events.outbox when the transaction wrote outbox rows.
OUTBOX_WRITTEN = "caracal.outbox_written"


@dataclass
class WriteContext:
    """What a service function knows about the caller, besides its session."""

    actor: Actor
    request_id: str
    actor_label: str  # created_by / updated_by (foundation §11)
    operator_header: bool  # x-caracal-created-via: operator
    facts: records.RequestFacts
    body: Any = None  # the decoded request body, for the change summary
    touched_chains: set[str] = field(default_factory=set)
    wrote_outbox: bool = False
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (cache evictions, ...)."""
        self._after_commit.append(callback)

    async def insert_audit(self, session: Tx, record: dict[str, Any]) -> None:
        """Insert an extra admin-audit row (e.g. the DCR shutdown record) in this transaction."""
        await records.insert(session, record)
        self.touched_chains.add(records.chain_key(record["zone_id"]))


ServiceFn = Callable[Concatenate[AsyncSession, WriteContext, P], Awaitable[T]]


# Opens one unit of work's transaction; the block's normal end commits it.
TxOpener = Callable[[], AbstractAsyncContextManager[Tx]]


@asynccontextmanager
async def _session_transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Tx]:
    async with sessionmaker() as session, session.begin():
        yield session


@asynccontextmanager
async def _driver_transaction(engine: AsyncEngine) -> AsyncIterator[Tx]:
    async with driver_transaction(engine) as connection:
        yield DriverTx(connection)


def in_session(sessionmaker: async_sessionmaker[AsyncSession]) -> TxOpener:
    """Units of work on an ORM session (every service can run there)."""
    return partial(_session_transaction, sessionmaker)


def on_driver(engine: AsyncEngine) -> TxOpener:
    """Units of work on the driver connection (services written against kit.driver only)."""
    return partial(_driver_transaction, engine)


def _backoff(attempt: int) -> float:
    return 0.010 * 2 ** (attempt - 1) + random.uniform(0, 0.010)


async def run_in_transaction(
    open_tx: TxOpener,
    make_context: Callable[[], WriteContext],
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    *,
    status_code: int,
    audit_zone: Callable[[T], str | None] | None = None,
) -> tuple[T, WriteContext]:
    """Run `fn(tx, ctx, *args)` and its success record in one transaction.

    SQLSTATE 40001/40P01 re-runs the whole function (at most 3 attempts in total). The
    caller responds only after this returns, i.e. after COMMIT.
    """
    attempt = 1
    while True:
        ctx = make_context()
        try:
            async with open_tx() as session:
                # First: on a session it begins the transaction that driver statements
                # (kit.driver) join; now() is the transaction's start time whenever read.
                occurred_at = await records.transaction_now(session)
                result = await fn(session, ctx, *args)
                record = records.build_record(
                    ctx.facts,
                    status_code=status_code,
                    occurred_at=occurred_at,
                    payload=records.success_payload(ctx.facts, ctx.body),
                    response_body=result,
                    zone_id=audit_zone(result) if audit_zone else None,
                )
                await ctx.insert_audit(session, record)
                ctx.wrote_outbox = bool(session.info.get(OUTBOX_WRITTEN))
            return result, ctx
        except (DBAPIError, asyncpg.PostgresError) as exc:
            if attempt >= MAX_ATTEMPTS or not is_retryable(exc):
                raise
            await asyncio.sleep(_backoff(attempt))
            attempt += 1
