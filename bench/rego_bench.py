"""Rego engine benchmark: validate latency, bundle compile time, per-decision evaluation.

    uv run python bench/rego_bench.py [--decisions 2000] [--workers 2]

Two data sets, shaped like the caracalai-admin grant document (`app_ids` + `grants` as
JSON literals): 10 grants and 5,000 grants, as two policies per set (`app_ids` and
`grants`) so the 5,000-grant document stays under the 262,144-unit content cap. For each it measures

- validate: the static validator alone, and static + compile check through the engine
  (what `POST /v1/policies/validate` spends in Rego);
- bundle compile: a first `verify_bundle` of a fresh bundle (contract + the document);
- decision: `evaluate` on the cached bundle through the engine — the caller's round trip
  (queue + IPC + worker), the time the worker itself reports, the throughput with every
  worker busy — plus the same evaluation in-process (no IPC) for reference.

Prints a table; never asserts on time. The goal is ≤ 1 ms per decision on a cached bundle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from caracal_api.policies import validation  # noqa: E402
from caracal_api.policies.contract import RESULT_ENTRYPOINT, BundleModule, sha256_hex  # noqa: E402
from caracal_api.policies.engine import RegoEngine  # noqa: E402

HEADER = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n"


def documents(grants: int, salt: str) -> tuple[str, str]:
    """(app_ids document, grants document): two policies, each under the content cap."""
    app_ids = {f"a{i}": f"i{i}" for i in range(grants)}
    doc = {f"r{i}": {"application": f"a{i}", "roles": {"r": ["x"]}} for i in range(grants)}
    return (
        HEADER + f"# {salt}\napp_ids := {json.dumps(app_ids, separators=(',', ':'))}\n",
        HEADER + f"# {salt}\ngrants := {json.dumps(doc, separators=(',', ':'))}\n",
    )


def decision_input(grants: int) -> dict[str, Any]:
    n = grants // 2
    return {
        "schema_version": "2026-05-20",
        "principal": {"id": f"i{n}", "labels": ["r"]},
        "resource": {"identifier": f"r{n}"},
        "action": {"id": "Mint"},
        "context": {"requested_scopes": ["x"], "agent_session_id": "s"},
        "delegation_edge": {"id": "e", "scopes": ["x"]},
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f}"


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.fmean(ordered), statistics.median(ordered), p99


def in_process(modules: list[tuple[str, str]], inp: dict[str, Any], count: int) -> list[float]:
    """The same bundle evaluated in this process (the worker's code path, no IPC)."""
    from caracal_api.policies.worker import Worker

    class _Silent:
        def send(self, message: dict[str, Any]) -> None:
            return None

    worker = Worker(_Silent(), 4)  # type: ignore[arg-type]
    (rego, bundle), _ = worker._build_bundle(modules)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        worker._query(rego, bundle, RESULT_ENTRYPOINT, inp)
        samples.append(time.perf_counter() - started)
    return samples


async def run(decisions: int, workers: int) -> None:
    engine = RegoEngine(workers=workers, timeout_ms=60_000)
    await engine.start()
    rows: list[tuple[str, str, float, float, float, int]] = []
    try:
        for grants in (10, 5000):
            label = f"{grants} grants"
            app_ids, content = documents(grants, f"bench {time.time_ns()}")
            size = validation.utf16_length(content)

            static_samples = []
            for _ in range(20 if grants > 10 else 200):
                started = time.perf_counter()
                static = validation.validate_static(content)
                static_samples.append(time.perf_counter() - started)
            assert static.ok, static.code
            rows.append((label, "validate: static only", *summary(static_samples), size))

            check_samples = []
            for _ in range(3 if grants > 10 else 30):
                started = time.perf_counter()
                failure = await engine.check_content(content, static)
                check_samples.append(time.perf_counter() - started)
                if failure is not None:
                    print(f"compile check failed: {failure}")
            rows.append((label, "validate: static + compile", *summary(check_samples), size))

            compile_samples = []
            modules: list[BundleModule] = []
            for attempt in range(3 if grants > 10 else 20):
                salted = content + f"# {attempt}\n"
                modules = [
                    BundleModule("pv-app-ids", app_ids, sha256_hex(app_ids)),
                    BundleModule(f"pv-{attempt}", salted, sha256_hex(salted)),
                ]
                started = time.perf_counter()
                await engine.verify_bundle(modules)
                compile_samples.append(time.perf_counter() - started)
            rows.append((label, "bundle compile (verify)", *summary(compile_samples), size))

            inp = decision_input(grants)
            for _ in range(workers * 2):  # warm every worker's cache
                await engine.evaluate(modules, inp)
            round_trips, engine_times = [], []
            for _ in range(decisions):
                started = time.perf_counter()
                evaluation = await engine.evaluate(modules, inp)
                round_trips.append(time.perf_counter() - started)
                engine_times.append(evaluation.seconds)
            assert evaluation.result is not None
            rows.append(
                (label, "decision: round trip, sequential", *summary(round_trips), decisions)
            )
            rows.append((label, "decision: worker time", *summary(engine_times), decisions))

            started = time.perf_counter()
            await asyncio.gather(*(engine.evaluate(modules, inp) for _ in range(decisions)))
            per = (time.perf_counter() - started) / decisions
            rows.append(
                (label, f"decision: engine, {workers} workers busy", per, per, per, decisions)
            )

            local = in_process([(m.file_name, m.content) for m in modules], inp, decisions)
            rows.append((label, "decision: in-process regopy", *summary(local), decisions))
    finally:
        await engine.stop()

    head = ("document", "operation", "mean ms", "p50 ms", "p99 ms", "n/size")
    print(f"{head[0]:<12} {head[1]:<34} {head[2]:>9} {head[3]:>9} {head[4]:>9} {head[5]:>8}")
    print("-" * 86)
    for doc, operation, mean, p50, p99, n in rows:
        print(f"{doc:<12} {operation:<34} {ms(mean)} {ms(p50)} {ms(p99)} {n:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.decisions, args.workers))


if __name__ == "__main__":
    main()
