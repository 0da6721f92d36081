"""The Rego engine: compile check, bundle verification, timeouts, the busy pool, the cache."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import pytest

from caracal_api.metrics import POLICY_BUNDLE_CACHE, REGO_OPERATIONS
from caracal_api.policies import validation
from caracal_api.policies.contract import DEFAULT_DENY, BundleModule, sha256_hex
from caracal_api.policies.engine import FailureKind, RegoEngine, RegoFailure
from caracal_api.policies.errors import RegoEngineBusy

HEADER = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n"
GOOD = (
    HEADER
    + 'app_ids := {"billing": "app-1"}\n'
    + 'grants := {"res://a": {"application": "billing", "roles": {"r": ["x:read"]}}}\n'
)
SLOW = HEADER + (
    "grants := count({[i, j] |\n"
    "  some i in numbers.range(1, 1000)\n"
    "  some j in numbers.range(1, 1000)\n"
    "})\n"
)
DELEGATED = {
    "principal": {"id": "app-1", "labels": ["r"]},
    "resource": {"identifier": "res://a"},
    "context": {"requested_scopes": ["x:read"], "agent_session_id": "s"},
    "delegation_edge": {"id": "e", "scopes": ["x:read"]},
}


def bundle_module(content: str, ident: str | None = None) -> BundleModule:
    digest = sha256_hex(content)
    return BundleModule(ident or f"pv-{digest[:16]}", content, digest)


async def settled(engine: RegoEngine) -> None:
    """Wait until every worker is back (a killed worker is replaced in the background)."""
    for _ in range(200):
        if engine.idle_workers == engine.size:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the engine did not get its workers back")


async def check(engine: RegoEngine, content: str) -> RegoFailure | None:
    static = validation.validate_static(content)
    assert static.ok, static.code
    return await engine.check_content(content, static)


def counter(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


async def test_self_check_passes(rego_engine: RegoEngine) -> None:
    await rego_engine.self_check()


async def test_valid_content_compiles(rego_engine: RegoEngine) -> None:
    assert await check(rego_engine, GOOD) is None


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        ('app_ids := {"a": }\n', 4, 13),
        ("grants := 1 +\n", 4, 13),
        ('# zürich-ß 🚀\ngrants := {"é": 1} +\n', 5, 20),
    ],
)
async def test_compile_errors_carry_line_and_column(
    rego_engine: RegoEngine, body: str, line: int, column: int
) -> None:
    failure = await check(rego_engine, HEADER + body)
    assert failure is not None
    assert failure.kind == FailureKind.COMPILE
    assert failure.module == "policy"
    assert (failure.line, failure.column) == (line, column)
    assert failure.message
    assert len(failure.message) <= 500


async def test_two_different_definitions_are_an_evaluation_error(rego_engine: RegoEngine) -> None:
    failure = await check(rego_engine, HEADER + 'app_ids := {"a": 1}\napp_ids := {"a": 2}\n')
    assert failure is not None
    assert failure.kind == FailureKind.EVALUATION
    assert failure.message == "complete rules must not produce multiple outputs"
    assert (failure.line, failure.column) == (None, None)
    same = HEADER + 'app_ids := {"a": 1}\napp_ids := {"a": 1}\n'
    assert await check(rego_engine, same) is None


async def test_type_errors_in_data_rules_are_evaluation_errors(rego_engine: RegoEngine) -> None:
    failure = await check(rego_engine, HEADER + "grants := 1 / 0\n")
    assert failure is not None
    assert failure.kind == FailureKind.EVALUATION
    failure = await check(rego_engine, HEADER + 'grants := startswith(5, "a")\n')
    assert failure is not None
    assert failure.kind == FailureKind.EVALUATION


async def test_print_output_never_reaches_the_channel(rego_engine: RegoEngine) -> None:
    content = HEADER + 'grants := x if { print("hello from rego"); x := {} }\n'
    assert await check(rego_engine, content) is None
    evaluation = await rego_engine.evaluate([bundle_module(content)], {})
    assert evaluation.result == DEFAULT_DENY


async def test_workers_run_with_an_empty_environment(rego_engine: RegoEngine) -> None:
    os.environ.setdefault("CARACAL_TEST_SENTINEL", "secret")
    grants = '{"res://a": {"application": "billing", "roles": {"r": ["x:read"]}}}'
    content = (
        HEADER
        + 'app_ids := {"billing": "app-1"}\n'
        + f"grants := {grants} if {{ count(opa.runtime().env) == 0 }}\n"
    )
    evaluation = await rego_engine.evaluate([bundle_module(content)], DELEGATED)
    assert evaluation.result is not None
    assert evaluation.result["decision"] == "allow"


async def test_bundle_compile_error_names_the_module_and_position(rego_engine: RegoEngine) -> None:
    good = bundle_module(GOOD, "pv-good")
    bad = bundle_module(HEADER + "risk := [\n  1,\n  2 +\n]\n", "pv-bad")
    failure = await rego_engine.verify_bundle([good, bad])
    assert failure is not None
    assert failure.kind == FailureKind.COMPILE
    assert failure.module == "pv-bad"
    assert (failure.line, failure.column) == (4, 9)


async def test_bundle_verification_rejects_conflicting_documents(rego_engine: RegoEngine) -> None:
    first = bundle_module(HEADER + 'grants := {"a": 1}\n')
    second = bundle_module(HEADER + 'grants := {"a": 2}\n')
    failure = await rego_engine.verify_bundle([first, second])
    assert failure is not None
    assert failure.kind == FailureKind.EVALUATION
    assert "multiple outputs" in failure.message
    assert not rego_engine.is_verified([first, second])


async def test_verified_digests_are_remembered(rego_engine: RegoEngine) -> None:
    modules = [bundle_module(GOOD + "# verified once\n")]
    assert not rego_engine.is_verified(modules)
    assert await rego_engine.verify_bundle(modules) is None
    assert rego_engine.is_verified(modules)
    before = counter(REGO_OPERATIONS, "compile", "ok")
    assert await rego_engine.verify_bundle(modules) is None
    assert counter(REGO_OPERATIONS, "compile", "ok") == before


async def test_second_evaluation_hits_the_cache(rego_engine: RegoEngine) -> None:
    modules = [bundle_module(GOOD + "# cache hit\n")]
    hits = counter(POLICY_BUNDLE_CACHE, "hit")
    misses = counter(POLICY_BUNDLE_CACHE, "miss")
    first = await rego_engine.evaluate(modules, DELEGATED)
    assert not first.cache_hit
    assert counter(POLICY_BUNDLE_CACHE, "miss") == misses + 1
    second = await rego_engine.evaluate(modules, DELEGATED)
    assert second.cache_hit
    assert counter(POLICY_BUNDLE_CACHE, "hit") == hits + 1
    assert second.result == first.result
    assert second.seconds < 0.005


async def test_cache_is_bounded_per_worker() -> None:
    engine = RegoEngine(workers=1, timeout_ms=20_000, cache_size=2)
    await engine.start()
    try:
        a, b, c = (bundle_module(GOOD + f"# bundle {n}\n") for n in "abc")
        for modules in ([a], [b], [c]):
            assert not (await engine.evaluate(modules, {})).cache_hit
        assert (await engine.evaluate([c], {})).cache_hit
        assert (await engine.evaluate([b], {})).cache_hit
        # a was the least recently used of three: evicted
        assert not (await engine.evaluate([a], {})).cache_hit
        # which evicted c (b was used after c)
        assert not (await engine.evaluate([c], {})).cache_hit
    finally:
        await engine.stop()


async def test_timeout_kills_and_replaces_the_worker() -> None:
    engine = RegoEngine(workers=1, timeout_ms=500)
    await engine.start()
    try:
        before_pids = engine.worker_pids
        timeouts = counter(REGO_OPERATIONS, "compile", "timeout")
        started = time.perf_counter()
        failure = await check(engine, SLOW)
        assert time.perf_counter() - started < 2.0
        assert failure is not None
        assert failure.kind == FailureKind.EVALUATION_TIMEOUT
        assert failure.is_timeout
        assert counter(REGO_OPERATIONS, "compile", "timeout") == timeouts + 1
        # the next call waits for the replacement and succeeds
        assert await check(engine, GOOD) is None
        assert engine.worker_pids != before_pids
        assert len(engine.worker_pids) == 1
    finally:
        await engine.stop()


async def test_compile_timeout() -> None:
    grants = {f"res://{i}": {"application": f"app{i}", "roles": {"r": ["x"]}} for i in range(3000)}
    # a Rego rule (not a JSON statement), so bundles compile it as Rego too
    content = HEADER + f"grants := {json.dumps(grants)} if {{ true }}\n"
    engine = RegoEngine(workers=1, timeout_ms=200)
    await engine.start()
    try:
        failure = await check(engine, content)
        assert failure is not None
        assert failure.kind == FailureKind.COMPILE_TIMEOUT
        await settled(engine)
        evaluation = await engine.evaluate([bundle_module(content)], {})
        assert evaluation.failure is not None
        assert evaluation.failure.kind == FailureKind.COMPILE_TIMEOUT
    finally:
        await engine.stop()


async def test_evaluation_timeout_on_a_cached_bundle() -> None:
    content = HEADER + (
        'app_ids := {"billing": "app-1"}\ngrants := {k: {} | some k in numbers.range(1, input.n)}\n'
    )
    engine = RegoEngine(workers=1, timeout_ms=500)
    await engine.start()
    try:
        modules = [bundle_module(content)]
        fast = await engine.evaluate(modules, {**DELEGATED, "n": 1})
        assert fast.failure is None
        slow = await engine.evaluate(modules, {**DELEGATED, "n": 10_000_000})
        assert slow.failure is not None
        assert slow.failure.kind == FailureKind.EVALUATION_TIMEOUT
    finally:
        await engine.stop()


async def test_busy_pool_answers_503_after_the_wait_bound() -> None:
    engine = RegoEngine(workers=1, timeout_ms=400)
    await engine.start()
    try:
        busy = counter(REGO_OPERATIONS, "compile", "busy")
        slow = asyncio.create_task(check(engine, SLOW))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(RegoEngineBusy) as caught:
            await check(engine, GOOD)
        waited = time.perf_counter() - started
        assert 0.3 < waited < 1.5
        assert caught.value.status == 503
        assert caught.value.code == "rego_engine_busy"
        assert caught.value.headers == {"Retry-After": "1"}
        assert counter(REGO_OPERATIONS, "compile", "busy") == busy + 1
        slow_failure = await slow
        assert slow_failure is not None
        assert slow_failure.is_timeout
        # once a worker is free again the same call succeeds
        assert await check(engine, GOOD) is None
    finally:
        await engine.stop()


async def test_queued_calls_are_served_in_order_when_workers_free_up() -> None:
    engine = RegoEngine(workers=1, timeout_ms=5_000)
    await engine.start()
    try:
        results = await asyncio.gather(*(check(engine, GOOD) for _ in range(6)))
        assert results == [None] * 6
        assert engine.idle_workers == 1
    finally:
        await engine.stop()


async def test_a_dead_worker_is_replaced() -> None:
    engine = RegoEngine(workers=1, timeout_ms=2_000)
    await engine.start()
    try:
        (pid,) = engine.worker_pids
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        failure = await check(engine, GOOD)
        assert failure is not None
        assert failure.is_timeout
        assert await check(engine, GOOD) is None
        assert engine.worker_pids != [pid]
    finally:
        await engine.stop()


async def test_a_cancelled_call_never_leaks_its_worker() -> None:
    engine = RegoEngine(workers=1, timeout_ms=5_000)
    await engine.start()
    try:
        task = asyncio.create_task(check(engine, SLOW))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the interrupted worker was replaced, not handed to the next call mid-answer
        assert await check(engine, GOOD) is None
        evaluation = await engine.evaluate([bundle_module(GOOD)], DELEGATED)
        assert evaluation.result is not None
        assert evaluation.result["decision"] == "allow"
    finally:
        await engine.stop()


async def test_large_data_document_decides_fast_on_a_cached_bundle(rego_engine: RegoEngine) -> None:
    grants = {
        f"res://{i}": {"application": f"app{i}", "roles": {"r": ["x:read"]}} for i in range(5000)
    }
    app_ids = {f"app{i}": f"id-{i}" for i in range(5000)}
    content = HEADER + f"app_ids := {json.dumps(app_ids)}\ngrants := {json.dumps(grants)}\n"
    modules = [bundle_module(content)]
    inp = {
        **DELEGATED,
        "principal": {"id": "id-4321", "labels": ["r"]},
        "resource": {"identifier": "res://4321"},
    }
    first = await rego_engine.evaluate(modules, inp)
    assert first.result is not None
    assert first.result["determining_policies"] == [{"policy": "caracal-app4321-mint"}]
    second = await rego_engine.evaluate(modules, inp)
    assert second.cache_hit
    assert second.seconds < 0.05
