"""The Rego engine: a pool of worker processes with bounded waits and hard deadlines.

policies.md §3. Every compile and evaluation runs in a worker process
(`caracal_api.policies.worker`), because a runaway evaluation cannot be interrupted
inside a thread. Calls wait in one FIFO queue; a call that no worker takes within
`timeout_ms` raises `RegoEngineBusy` (503, `Retry-After: 1`). A call a worker took has a
hard deadline of `timeout_ms`: on expiry (or if the worker dies) the process is killed and
replaced and the call reports a timeout. Nothing here blocks the event loop.

Each worker keeps an LRU of built bundles keyed by digest; the parent sends the digest
first and the module texts only when the worker answers "miss". The parent mirrors each
worker's cache so a call prefers an idle worker that already holds its bundle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from caracal_api.metrics import POLICY_BUNDLE_CACHE, REGO_DURATION, REGO_OPERATIONS
from caracal_api.policies import contract, diagnostics
from caracal_api.policies.contract import BundleModule
from caracal_api.policies.errors import RegoEngineBusy
from caracal_api.policies.validation import StaticResult

log = logging.getLogger("caracal_api.rego")

_HEADER = struct.Struct(">I")
_SPAWN_TIMEOUT_S = 60.0
_RESPAWN_BACKOFF_S = (0.1, 0.5, 2.0, 5.0)
_WORKER_ENV = ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "TMPDIR")


class FailureKind(StrEnum):
    COMPILE = "compile"
    EVALUATION = "evaluation"
    COMPILE_TIMEOUT = "compile_timeout"
    EVALUATION_TIMEOUT = "evaluation_timeout"


@dataclass(frozen=True)
class RegoFailure:
    """Why a compile or an evaluation did not succeed.

    `module` is `"policy"` (compile check), a policy version id (bundles) or
    `"decision_contract"`; `line`/`column` are known only for compile errors located in a
    tenant module.
    """

    kind: FailureKind
    message: str
    module: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def is_timeout(self) -> bool:
        return self.kind in (FailureKind.COMPILE_TIMEOUT, FailureKind.EVALUATION_TIMEOUT)

    @property
    def is_compile(self) -> bool:
        return self.kind in (FailureKind.COMPILE, FailureKind.COMPILE_TIMEOUT)


@dataclass(frozen=True)
class Evaluation:
    """One decision: `result` (read fail-closed) or `failure`, never both.

    `seconds` is the engine time the worker spent on the call (building the bundle on a
    miss, plus the evaluation); the parent's queueing and IPC are not included.
    """

    result: dict[str, Any] | None
    failure: RegoFailure | None
    cache_hit: bool
    seconds: float


class ContractSelfCheckError(RuntimeError):
    """The embedded contract did not answer the default deny for empty data and input."""


class _WorkerGone(Exception):
    """The worker process ended (or stopped answering) during a call."""


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, cache_size: int) -> None:
        self.proc = proc
        self.digests: OrderedDict[str, None] = OrderedDict()
        self._cache_size = cache_size

    async def send(self, message: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            raise _WorkerGone
        body = orjson.dumps(message)
        try:
            stdin.write(_HEADER.pack(len(body)) + body)
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _WorkerGone from exc

    async def receive(self) -> dict[str, Any]:
        stdout = self.proc.stdout
        if stdout is None:
            raise _WorkerGone
        try:
            header = await stdout.readexactly(_HEADER.size)
            body = await stdout.readexactly(_HEADER.unpack(header)[0])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _WorkerGone from exc
        message: dict[str, Any] = orjson.loads(body)
        return message

    def remember(self, digest: str) -> None:
        self.digests[digest] = None
        self.digests.move_to_end(digest)
        while len(self.digests) > self._cache_size:
            self.digests.popitem(last=False)

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class _Call:
    """What the parent learned during one call: the final frame and the phase reached."""

    def __init__(self) -> None:
        self.compiled = False


class RegoEngine:
    """Pool of `workers` Rego processes; `timeout_ms` bounds both the wait and each call."""

    def __init__(
        self,
        workers: int = 2,
        timeout_ms: int = 3000,
        *,
        cache_size: int = 64,
        python: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.size = workers
        self.timeout = timeout_ms / 1000
        self.cache_size = cache_size
        self._python = python or sys.executable
        self._idle: list[_Worker] = []
        self._waiters: deque[asyncio.Future[_Worker]] = deque()
        self._all: set[_Worker] = set()
        self._verified: set[str] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._running = False

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker (raises if one cannot start)."""
        self._running = True
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        for worker in workers:
            self._release(worker)

    async def stop(self) -> None:
        """Kill the workers; queued calls fail as busy."""
        self._running = False
        # Reapers finish at once (their process is killed); a respawn in flight closes the
        # worker it started. Only a respawn stuck on a hung start is cancelled.
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.cancel()
        for worker in list(self._all):
            await self._close(worker)
        self._idle.clear()

    async def self_check(self) -> None:
        """Compile the contract alone and evaluate it with empty input (§3.3).

        Raises `ContractSelfCheckError` unless the answer is exactly the default deny.
        """
        evaluation = await self.evaluate([], {})
        if evaluation.failure is not None or evaluation.result != contract.DEFAULT_DENY:
            detail = evaluation.failure.message if evaluation.failure else evaluation.result
            raise ContractSelfCheckError(f"decision contract self-check failed: {detail}")

    @property
    def idle_workers(self) -> int:
        return len(self._idle)

    @property
    def worker_pids(self) -> list[int]:
        return sorted(w.proc.pid for w in self._all)

    def is_verified(self, modules: Sequence[BundleModule]) -> bool:
        return contract.bundle_digest(modules) in self._verified

    # --- public operations --------------------------------------------------------------

    async def check_content(self, content: str, static: StaticResult) -> RegoFailure | None:
        """The compile check of §2.2 for content that passed the static validator.

        Raises `RegoEngineBusy` when no worker takes the call in time.
        """
        request = {"op": "check", "content": content, "rules": list(static.data_rules)}
        sources = {contract.CHECK_MODULE_FILE: (contract.CHECK_MODULE_LABEL, content)}
        response, call, _ = await self._run("compile", request)
        return self._failure_of(response, call, sources, contract.CHECK_MODULE_LABEL)

    async def verify_bundle(self, modules: Sequence[BundleModule]) -> RegoFailure | None:
        """Local bundle verification (§5.3 step 1); verified digests are remembered."""
        digest = contract.bundle_digest(modules)
        if digest in self._verified:
            return None
        request = {
            "op": "verify",
            "digest": digest,
            "modules": [[m.file_name, m.content] for m in modules],
        }
        response, call, _ = await self._run("compile", request, digest=digest)
        failure = self._failure_of(response, call, _sources(modules), _first_label(modules))
        if failure is None:
            self._verified.add(digest)
        return failure

    async def evaluate(
        self, modules: Sequence[BundleModule], input_document: dict[str, Any]
    ) -> Evaluation:
        """Evaluate `result` of the bundle for one input, building it on a cache miss."""
        digest = contract.bundle_digest(modules)
        request: dict[str, Any] = {"op": "evaluate", "digest": digest, "input": input_document}
        payload = [[m.file_name, m.content] for m in modules]
        response, call, seconds = await self._run(
            "evaluate", request, digest=digest, modules=payload
        )
        cache_hit = response.get("cache") == "hit"
        failure = self._failure_of(response, call, _sources(modules), _first_label(modules))
        if failure is not None:
            return Evaluation(None, failure, cache_hit, seconds)
        try:
            result = contract.decision_from(str(response.get("status")), response.get("value"))
        except contract.MalformedResult as exc:
            failure = RegoFailure(FailureKind.EVALUATION, str(exc))
            return Evaluation(None, failure, cache_hit, seconds)
        return Evaluation(result, None, cache_hit, seconds)

    # --- calls --------------------------------------------------------------------------

    async def _run(
        self,
        kind: str,
        request: dict[str, Any],
        *,
        digest: str | None = None,
        modules: list[list[str]] | None = None,
    ) -> tuple[dict[str, Any], _Call, float]:
        worker = await self._acquire(kind, digest)
        call = _Call()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                # Without module texts the worker either has the bundle (so the time goes
                # into evaluating) or answers "miss" at once.
                call.compiled = modules is not None
                response = await self._exchange(worker, request, call)
                if response.get("status") == "miss" and modules is not None:
                    POLICY_BUNDLE_CACHE.labels("miss").inc()
                    call.compiled = False
                    response = await self._exchange(worker, {**request, "modules": modules}, call)
                    response["cache"] = "miss"
                elif request.get("op") == "evaluate" and response.get("cache") == "hit":
                    POLICY_BUNDLE_CACHE.labels("hit").inc()
        except (TimeoutError, _WorkerGone) as exc:
            seconds = time.perf_counter() - started
            REGO_DURATION.labels(kind).observe(seconds)
            REGO_OPERATIONS.labels(kind, "timeout").inc()
            reason = "timed out" if isinstance(exc, TimeoutError) else "exited"
            log.warning(
                "rego worker %s during a %s call; replacing it",
                reason,
                kind,
                extra={"worker_pid": worker.proc.pid},
            )
            self._replace(worker)
            return {"status": "timeout"}, call, seconds
        except BaseException:
            # Cancelled mid-call (or a protocol fault): the worker may still answer later,
            # so it can never serve another call.
            self._replace(worker)
            raise
        # Engine time as the worker measured it (no queueing, no IPC), else the round trip.
        took = response.get("took")
        seconds = float(took) if isinstance(took, int | float) else time.perf_counter() - started
        REGO_DURATION.labels(kind).observe(seconds)
        ok = response.get("status") in ("ok", "undefined")
        REGO_OPERATIONS.labels(kind, "ok" if ok else "error").inc()
        if digest is not None and response.get("status") not in ("compile_error", "miss"):
            worker.remember(digest)
        self._release(worker)
        return response, call, seconds

    async def _exchange(
        self, worker: _Worker, request: dict[str, Any], call: _Call
    ) -> dict[str, Any]:
        await worker.send(request)
        while True:
            frame = await worker.receive()
            if frame.get("progress") == "compiled":
                call.compiled = True
                continue
            return frame

    def _failure_of(
        self,
        response: dict[str, Any],
        call: _Call,
        sources: dict[str, tuple[str, str]],
        default_label: str,
    ) -> RegoFailure | None:
        status = response.get("status")
        if status in ("ok", "undefined"):
            return None
        if status == "timeout":
            kind = FailureKind.EVALUATION_TIMEOUT if call.compiled else FailureKind.COMPILE_TIMEOUT
            message = "evaluation timed out" if call.compiled else "compilation timed out"
            return RegoFailure(kind, message)
        if status == "compile_error":
            return _compile_failure(str(response.get("text", "")), sources, default_label)
        message = diagnostics.truncate(str(response.get("message") or "evaluation error"))
        return RegoFailure(FailureKind.EVALUATION, message)

    # --- the pool -----------------------------------------------------------------------

    async def _acquire(self, kind: str, digest: str | None) -> _Worker:
        if self._idle and not self._waiters:
            return self._take_idle(digest)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Worker] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=self.timeout)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())
            else:
                waiter.cancel()
            raise
        if waiter.done() and not waiter.cancelled():
            return waiter.result()
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        REGO_OPERATIONS.labels(kind, "busy").inc()
        raise RegoEngineBusy

    def _take_idle(self, digest: str | None) -> _Worker:
        if digest is not None:
            for index, worker in enumerate(self._idle):
                if digest in worker.digests:
                    return self._idle.pop(index)
        return self._idle.pop()

    def _release(self, worker: _Worker) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._all.discard(worker)
        self._background(worker.proc.wait())
        if self._running:
            self._background(self._respawn())

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respawn(self) -> None:
        attempt = 0
        while self._running:
            try:
                worker = await self._spawn()
            except Exception:
                delay = _RESPAWN_BACKOFF_S[min(attempt, len(_RESPAWN_BACKOFF_S) - 1)]
                log.exception("rego worker failed to start; retrying in %.1fs", delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if not self._running:
                await self._close(worker)
                return
            self._release(worker)
            return

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            "caracal_api.policies.worker",
            str(self.cache_size),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=_worker_environment(),
        )
        worker = _Worker(proc, self.cache_size)
        try:
            async with asyncio.timeout(_SPAWN_TIMEOUT_S):
                ready = await worker.receive()
        except (TimeoutError, _WorkerGone) as exc:
            worker.kill()
            await proc.wait()
            raise RuntimeError("rego worker did not start") from exc
        if ready.get("status") != "ready":
            worker.kill()
            await proc.wait()
            raise RuntimeError("rego worker did not start")
        self._all.add(worker)
        return worker

    async def _close(self, worker: _Worker) -> None:
        self._all.discard(worker)
        if worker.proc.stdin is not None:
            worker.proc.stdin.close()
        try:
            async with asyncio.timeout(1.0):
                await worker.proc.wait()
        except TimeoutError:
            worker.kill()
            await worker.proc.wait()


def _worker_environment() -> dict[str, str]:
    """What a worker needs to start Python, and nothing else (no secrets in its environ)."""
    return {name: os.environ[name] for name in _WORKER_ENV if name in os.environ}


def _sources(modules: Sequence[BundleModule]) -> dict[str, tuple[str, str]]:
    return {m.file_name: (m.id, m.content) for m in modules}


def _first_label(modules: Sequence[BundleModule]) -> str:
    return modules[0].id if modules else contract.CONTRACT_MODULE_LABEL


def _compile_failure(
    text: str, sources: dict[str, tuple[str, str]], default_label: str
) -> RegoFailure:
    """Locate a compile error: the first record in a tenant module gives module and position."""
    records = diagnostics.parse_error_records(text)
    message = diagnostics.first_message(text)
    for record in records:
        if record.module in sources:
            label, source = sources[record.module]
            line: int | None = None
            column: int | None = None
            if record.offset is not None:
                line, column = diagnostics.line_column(source, record.offset)
            return RegoFailure(FailureKind.COMPILE, message, label, line, column)
    if any(record.module == contract.CONTRACT_MODULE for record in records):
        return RegoFailure(FailureKind.COMPILE, message, contract.CONTRACT_MODULE_LABEL)
    return RegoFailure(FailureKind.COMPILE, message, default_label)
