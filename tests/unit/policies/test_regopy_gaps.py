"""Forms OPA accepts that regopy 1.5 refuses or evaluates differently (docs/policies.md).

Each gap is pinned with its workaround, so an upgrade that closes a gap shows up here.
"""

from __future__ import annotations

import pytest

from caracal_api.policies import validation
from caracal_api.policies.contract import BundleModule, sha256_hex
from caracal_api.policies.engine import FailureKind, RegoEngine, RegoFailure

HEADER = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n"


async def check(engine: RegoEngine, body: str) -> RegoFailure | None:
    content = HEADER + body + "\n"
    static = validation.validate_static(content)
    assert static.ok, static.code
    return await engine.check_content(content, static)


async def value_of(engine: RegoEngine, body: str, inp: dict[str, object]) -> object:
    """Evaluate a data rule through the contract: grants decides a delegated mint."""
    content = HEADER + 'app_ids := {"k": "app-1"}\n' + body + "\n"
    module = BundleModule("pv-gap-" + sha256_hex(content)[:12], content, sha256_hex(content))
    evaluation = await engine.evaluate([module], inp)
    assert evaluation.failure is None, evaluation.failure
    assert evaluation.result is not None
    return evaluation.result["decision"]


@pytest.mark.parametrize(
    "body",
    [
        'grants := {k | some k, v in {"a": 1}}',
        'grants := [k | some k, v in {"a": 1}]',
        'grants := {k | some k, v in {"a": 1}; v == 1}',
        'grants := {v | some k, v in {"a": 1}}',
    ],
)
async def test_two_variable_some_in_set_or_array_comprehension_is_refused(
    rego_engine: RegoEngine, body: str
) -> None:
    failure = await check(rego_engine, body)
    assert failure is not None
    assert failure.kind == FailureKind.COMPILE
    assert failure.message == "Invalid collection"
    assert (failure.line, failure.module) == (4, "policy")


@pytest.mark.parametrize(
    "body",
    [
        'grants := {k | some k; v := {"a": 1}[k]; v == 1}',
        'grants := [k | some k; {"a": 1}[k] == 1]',
        'grants := {k: v | some k, v in {"a": 1}}',  # object comprehensions are fine
        'grants contains k if { some k, v in {"a": 1}; v == 1 }',  # so are rule bodies
    ],
)
async def test_two_variable_some_workarounds_compile(rego_engine: RegoEngine, body: str) -> None:
    assert await check(rego_engine, body) is None


async def test_workaround_decides_like_the_intended_form(rego_engine: RegoEngine) -> None:
    body = (
        'grants := {r: {"application": "k", "roles": {"r": ["x"]}} |\n'
        '  some r; v := {"res://a": true, "res://b": false}[r]; v\n}'
    )
    inp = {
        "principal": {"id": "app-1", "labels": ["r"]},
        "resource": {"identifier": "res://a"},
        "context": {"requested_scopes": ["x"], "agent_session_id": "s"},
        "delegation_edge": {"id": "e", "scopes": ["x"]},
    }
    assert await value_of(rego_engine, body, inp) == "allow"
    inp["resource"] = {"identifier": "res://b"}
    assert await value_of(rego_engine, body, inp) == "deny"


async def test_every_as_an_unbraced_rule_body_is_refused(rego_engine: RegoEngine) -> None:
    failure = await check(rego_engine, "grants if every v in [1, 2] { v > 0 }")
    assert failure is not None
    assert failure.kind == FailureKind.COMPILE
    assert failure.message == "Invalid rule head"
    assert await check(rego_engine, "grants if { every v in [1, 2] { v > 0 } }") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('grants := x if { trace("note"); x := {} }', "Function not found: trace"),
        ('grants := net.cidr_is_valid("10.0.0.0/8")', "Networking builtins are not supported"),
        ('grants := time.parse_rfc3339_ns("2020-01-01T00:00:00Z")', "Unable to parse time"),
    ],
)
async def test_builtins_regopy_lacks_fail_evaluation(
    rego_engine: RegoEngine, body: str, message: str
) -> None:
    failure = await check(rego_engine, body)
    assert failure is not None
    assert failure.kind == FailureKind.EVALUATION
    assert failure.message == message


async def test_print_is_accepted_and_its_output_discarded(rego_engine: RegoEngine) -> None:
    assert await check(rego_engine, 'grants := x if { print("debug"); x := {} }') is None


async def test_regopy_accepts_an_unbound_variable_that_opa_refuses(rego_engine: RegoEngine) -> None:
    # OPA reports "var x is unsafe"; regopy compiles it and the rule is simply undefined.
    assert await check(rego_engine, "grants := x") is None


async def test_with_input_as_a_reference_to_input_kills_the_worker() -> None:
    # rego-cpp aborts the process ("shape `rego-with` has no field `rego-ref`"); the worker
    # dies, the call reports a timeout and the pool replaces it.
    engine = RegoEngine(workers=1, timeout_ms=5_000)
    await engine.start()
    try:
        (pid,) = engine.worker_pids
        failure = await check(engine, "grants := x if { x := input.a with input as input.b }")
        assert failure is not None
        assert failure.is_timeout
        assert engine.worker_pids != [pid]
        # bind the value first
        workaround = "grants := x if { v := input.b; x := input.a with input as v }"
        assert await check(engine, workaround) is None
    finally:
        await engine.stop()
