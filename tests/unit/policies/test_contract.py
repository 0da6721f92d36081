"""The embedded decision contract (policies.md §9), evaluated through the engine.

Every scenario runs twice: with the data documents as plain JSON statements (which
bundles load as base data) and as computed Rego rules (compiled as modules), so both
ways of building a bundle are shown to decide alike.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from caracal_api.policies import contract
from caracal_api.policies.contract import DEFAULT_DENY, BundleModule, sha256_hex
from caracal_api.policies.engine import Evaluation, FailureKind, RegoEngine

HEADER = "# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\n"

APP_IDS = {"billing": "app-1"}
GRANTS = {
    "res://a": {"application": "billing", "roles": {"r": ["x:read", "x:write"], "ro": ["x:read"]}}
}
BASE: dict[str, Any] = {"app_ids": APP_IDS, "grants": GRANTS}


def module(docs: dict[str, Any], plan: str, index: int = 0) -> BundleModule:
    suffix = "" if plan == "data" else " if { true }"
    lines = [f"{name} := {json.dumps(value)}{suffix}" for name, value in docs.items()]
    content = HEADER + "\n".join(lines) + "\n"
    return BundleModule(
        f"pv-{plan}-{index}-{sha256_hex(content)[:12]}", content, sha256_hex(content)
    )


@pytest.fixture(params=["data", "rego"])
def plan(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Decide:
    def __init__(self, engine: RegoEngine, plan: str) -> None:
        self.engine = engine
        self.plan = plan

    async def __call__(self, docs: dict[str, Any] | None, inp: dict[str, Any]) -> Evaluation:
        modules = [] if docs is None else [module(docs, self.plan)]
        return await self.engine.evaluate(modules, inp)

    async def result(self, docs: dict[str, Any] | None, inp: dict[str, Any]) -> dict[str, Any]:
        evaluation = await self(docs, inp)
        assert evaluation.failure is None, evaluation.failure
        assert evaluation.result is not None
        return evaluation.result

    async def reason(self, docs: dict[str, Any] | None, inp: dict[str, Any]) -> str:
        result = await self.result(docs, inp)
        assert result["decision"] == "deny", result
        assert result["determining_policies"] == []
        reason: str = result["diagnostics"][0]["reason"]
        return reason

    async def failure(self, docs: dict[str, Any] | None, inp: dict[str, Any]) -> str:
        evaluation = await self(docs, inp)
        assert evaluation.result is None
        assert evaluation.failure is not None
        assert evaluation.failure.kind == FailureKind.EVALUATION
        return evaluation.failure.message


@pytest.fixture
def decide(rego_engine: RegoEngine, plan: str) -> Decide:
    return Decide(rego_engine, plan)


def with_docs(**extra: Any) -> dict[str, Any]:
    docs = copy.deepcopy(BASE)
    docs.update(extra)
    return docs


def allow(policy: str, diagnostics: list[Any] | None = None) -> dict[str, Any]:
    return {
        "decision": "allow",
        "evaluation_status": "complete",
        "determining_policies": [{"policy": policy}],
        "diagnostics": diagnostics or [],
    }


def bootstrap_input(**context: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {"requested_scopes": ["agent:lifecycle"]}
    ctx.update(context)
    return {"principal": {"id": "app-1"}, "resource": {"identifier": "res://a"}, "context": ctx}


def delegated_input(
    scopes: list[str] | None = None, edge: list[str] | None = None, labels: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "schema_version": "2026-05-20",
        "principal": {"id": "app-1", "labels": ["r"] if labels is None else labels},
        "resource": {"identifier": "res://a"},
        "action": {"id": "Mint"},
        "context": {
            "requested_scopes": ["x:read"] if scopes is None else scopes,
            "agent_session_id": "sess-1",
        },
        "delegation_edge": {"id": "e1", "scopes": ["x:read", "x:write"] if edge is None else edge},
    }


def workload_input(**context: Any) -> dict[str, Any]:
    return {
        "principal": {"id": "wl-1", "type": "Workload"},
        "resource": {"identifier": "res://a"},
        "action": {"id": "CredentialInjection"},
        "context": {"requested_scopes": ["x:write"], **context},
    }


def use_input(**claims: Any) -> dict[str, Any]:
    subject_claims: dict[str, Any] = {
        "delegation_edge_id": "e1",
        "target": ["res://a"],
        "scope": "x:read x:write",
    }
    subject_claims.update(claims)
    return {
        "principal": {"id": "app-1", "labels": ["r"]},
        "resource": {"identifier": "res://a"},
        "context": {"subject_claims": subject_claims},
    }


# --- default and restriction ---------------------------------------------------------------


async def test_empty_data_and_empty_input_is_exactly_the_default_deny(decide: Decide) -> None:
    assert await decide.result(None, {}) == DEFAULT_DENY
    assert await decide.result({"restrict": {}}, {}) == DEFAULT_DENY


async def test_zone_with_no_data_denies_by_default(decide: Decide) -> None:
    assert await decide.reason(None, bootstrap_input()) == "no_rule_matched"
    # requests that name a resource nobody was granted
    assert await decide.reason(None, delegated_input()) == "resource_not_granted"
    assert await decide.reason(None, use_input()) == "resource_not_granted"


def test_undefined_result_is_read_as_the_default_deny() -> None:
    assert contract.decision_from("undefined", None) == DEFAULT_DENY


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"decision": "allow"},
        {"decision": "allow", "evaluation_status": "partial"},
        {"decision": "permit", "evaluation_status": "complete"},
        ["allow"],
        "allow",
        True,
    ],
)
def test_malformed_results_are_never_allow(value: Any) -> None:
    with pytest.raises(contract.MalformedResult):
        contract.decision_from("ok", value)
    with pytest.raises(contract.MalformedResult):
        contract.decision_from("error", value)


@pytest.mark.parametrize("restrict", [{"freeze": True}, ["x"], ["x", "y"], {"a": None}])
async def test_restriction_with_members_denies_every_path(decide: Decide, restrict: Any) -> None:
    docs = with_docs(restrict=restrict)
    for inp in (bootstrap_input(), delegated_input(), workload_input(), use_input()):
        assert await decide.reason(docs, inp) == "restriction_active"


@pytest.mark.parametrize("restrict", [True, [], {}, "x", 0, None, False])
async def test_restriction_without_members_does_not_restrict(decide: Decide, restrict: Any) -> None:
    result = await decide.result(with_docs(restrict=restrict), bootstrap_input())
    assert result == allow("caracal-bootstrap")


# --- bootstrap -----------------------------------------------------------------------------


async def test_bootstrap_owner_allows(decide: Decide) -> None:
    assert await decide.result(BASE, bootstrap_input()) == allow("caracal-bootstrap")


async def test_bootstrap_duplicated_scope_allows(decide: Decide) -> None:
    inp = bootstrap_input(requested_scopes=["agent:lifecycle", "agent:lifecycle"])
    assert await decide.result(BASE, inp) == allow("caracal-bootstrap")


@pytest.mark.parametrize(
    "context",
    [
        {"requested_scopes": ["agent:lifecycle", "x:read"]},
        {"requested_scopes": []},
        {"subject_claims": None},
        {"agent_session_id": "sess-1"},
    ],
)
async def test_bootstrap_variants_match_no_rule(decide: Decide, context: dict[str, Any]) -> None:
    assert await decide.reason(BASE, bootstrap_input(**context)) == "no_rule_matched"


@pytest.mark.parametrize("edge", [{}, {"id": "e1"}, None, 0, ""])
async def test_bootstrap_with_any_delegation_edge_matches_no_rule(
    decide: Decide, edge: Any
) -> None:
    inp = bootstrap_input()
    inp["delegation_edge"] = edge
    assert await decide.reason(BASE, inp) == "no_rule_matched"


async def test_bootstrap_edge_false_counts_as_absent(decide: Decide) -> None:
    inp = bootstrap_input(subject_claims=False)
    inp["delegation_edge"] = False
    assert await decide.result(BASE, inp) == allow("caracal-bootstrap")


async def test_bootstrap_non_owner_matches_no_rule(decide: Decide) -> None:
    inp = bootstrap_input()
    inp["principal"]["id"] = "app-2"
    assert await decide.reason(BASE, inp) == "no_rule_matched"


async def test_bootstrap_ignores_malformed_risk_and_approval(decide: Decide) -> None:
    docs = with_docs(risk={"a": 1}, approval_tiers="nope")
    assert await decide.result(docs, bootstrap_input()) == allow("caracal-bootstrap")


# --- delegated mint ------------------------------------------------------------------------


async def test_delegated_mint_allows_with_the_application_key(decide: Decide) -> None:
    assert await decide.result(BASE, delegated_input()) == allow("caracal-billing-mint")
    both = delegated_input(scopes=["x:read", "x:write"])
    assert await decide.result(BASE, both) == allow("caracal-billing-mint")


async def test_delegated_mint_alias_key_changes_nothing(decide: Decide) -> None:
    docs = with_docs(app_ids={"billing": "app-1", "billing-alias": "app-1", "other": "app-9"})
    assert await decide.result(docs, delegated_input()) == allow("caracal-billing-mint")


async def test_app_ids_as_an_array_binds_indices(decide: Decide) -> None:
    grants = {"res://a": {"application": 1, "roles": {"r": ["x:read"]}}}
    docs = {"app_ids": ["app-0", "app-1"], "grants": grants}
    assert await decide.result(docs, delegated_input()) == allow("caracal-1-mint")


async def test_delegated_missing_edge_scope(decide: Decide) -> None:
    inp = delegated_input(scopes=["x:read", "x:write"], edge=["x:read"])
    assert await decide.reason(BASE, inp) == "delegation_scope_exceeded"


async def test_delegated_non_owner(decide: Decide) -> None:
    inp = delegated_input()
    inp["principal"]["id"] = "app-2"
    assert await decide.reason(BASE, inp) == "resource_not_granted"
    unknown = delegated_input()
    unknown["resource"]["identifier"] = "res://unknown"
    assert await decide.reason(BASE, unknown) == "resource_not_granted"


@pytest.mark.parametrize("labels", [["ro"], ["other"], [], None, "r"])
async def test_delegated_without_a_role_covering_every_scope(decide: Decide, labels: Any) -> None:
    inp = delegated_input(scopes=["x:read", "x:write"])
    inp["principal"]["labels"] = labels
    assert await decide.reason(BASE, inp) == "role_scope_mismatch"


async def test_one_role_must_cover_all_scopes(decide: Decide) -> None:
    grants = {"res://a": {"application": "billing", "roles": {"a": ["x:read"], "b": ["x:write"]}}}
    docs = with_docs(grants=grants)
    inp = delegated_input(scopes=["x:read", "x:write"], labels=["a", "b"])
    assert await decide.reason(docs, inp) == "role_scope_mismatch"


async def test_agent_lifecycle_among_delegated_scopes_matches_no_rule(decide: Decide) -> None:
    inp = delegated_input(scopes=["x:read", "agent:lifecycle"], edge=["x:read", "agent:lifecycle"])
    assert await decide.reason(BASE, inp) == "no_rule_matched"


@pytest.mark.parametrize(
    "change",
    [
        {"delegation_edge": {"scopes": ["x:read"]}},
        {"delegation_edge": {"id": False, "scopes": ["x:read"]}},
        {"context": {"requested_scopes": ["x:read"]}},
        {"context": {"requested_scopes": [], "agent_session_id": "s"}},
        {"context": {"requested_scopes": "x:read", "agent_session_id": "s"}},
    ],
)
async def test_incomplete_delegated_requests_match_no_rule(
    decide: Decide, change: dict[str, Any]
) -> None:
    inp = delegated_input()
    inp.update(change)
    assert await decide.reason(BASE, inp) == "no_rule_matched"


async def test_delegated_request_with_subject_claims_is_not_a_mint(decide: Decide) -> None:
    inp = delegated_input()
    inp["context"]["subject_claims"] = {"sub": "x"}
    assert await decide.reason(BASE, inp) == "no_rule_matched"


async def test_requested_scopes_as_object_values(decide: Decide) -> None:
    inp = delegated_input()
    inp["context"]["requested_scopes"] = {"one": "x:read"}
    assert await decide.result(BASE, inp) == allow("caracal-billing-mint")


# --- confinement ---------------------------------------------------------------------------


async def test_confinement_prefix_excluding_a_scope_violates(decide: Decide) -> None:
    docs = with_docs(confinement=[{"label_prefix": "r", "scopes": ["x:write"]}])
    assert await decide.reason(docs, delegated_input()) == "confinement_violation"
    # the role still allows it, the confinement is what denies
    ok = with_docs(confinement=[{"label_prefix": "r", "scopes": ["x:read"]}])
    assert await decide.result(ok, delegated_input()) == allow("caracal-billing-mint")


@pytest.mark.parametrize(
    "confinement",
    [
        [{"label_prefix": "customer:", "scopes": []}],
        [{"scopes": []}],
        [{"label_prefix": 5, "scopes": []}],
        [{"label_prefix": None}],
        ["r"],
        {"label_prefix": "r", "scopes": []},
        "r",
        [],
    ],
)
async def test_confinement_without_a_matching_string_prefix_has_no_effect(
    decide: Decide, confinement: Any
) -> None:
    docs = with_docs(confinement=confinement)
    assert await decide.result(docs, delegated_input()) == allow("caracal-billing-mint")


async def test_confinement_object_values_are_rules(decide: Decide) -> None:
    docs = with_docs(confinement={"c1": {"label_prefix": "r", "scopes": []}})
    assert await decide.reason(docs, delegated_input()) == "confinement_violation"


async def test_confinement_without_scopes_confines_to_nothing(decide: Decide) -> None:
    docs = with_docs(confinement=[{"label_prefix": ""}])
    assert await decide.reason(docs, delegated_input()) == "confinement_violation"


async def test_callers_without_labels_match_no_confinement(decide: Decide) -> None:
    docs = with_docs(confinement=[{"label_prefix": "", "scopes": []}])
    inp = workload_input()
    assert (await decide.result(docs, inp))["decision"] == "allow"
    mixed = delegated_input(labels=[5, "r"])
    assert await decide.reason(docs, mixed) == "confinement_violation"


# --- risk and approval ---------------------------------------------------------------------


async def test_gated_tier_allows_with_step_up_then_risk(decide: Decide) -> None:
    decl = {"tier": "high", "approver": "subject", "extra": {"k": 1}}
    docs = with_docs(
        risk=[{"scope": "x:write", "tier": "high"}, {"scope": "x:read", "tier": "low"}],
        approval_tiers=[decl],
    )
    inp = delegated_input(scopes=["x:write", "x:read"])
    assert await decide.result(docs, inp) == allow(
        "caracal-billing-mint",
        [
            {"step_up_required": {"type": "human_approval", "tiers": [decl]}},
            {"risk": [{"scope": "x:read", "tier": "low"}, {"scope": "x:write", "tier": "high"}]},
        ],
    )


async def test_tier_without_declaration_carries_only_risk(decide: Decide) -> None:
    docs = with_docs(risk=[{"scope": "x:read", "tier": "low"}], approval_tiers=[{"tier": "high"}])
    inp = delegated_input(scopes=["x:read", "x:read"], edge=["x:read"])
    assert await decide.result(docs, inp) == allow(
        "caracal-billing-mint",
        [{"risk": [{"scope": "x:read", "tier": "low"}, {"scope": "x:read", "tier": "low"}]}],
    )


async def test_no_tiered_scope_means_no_diagnostics(decide: Decide) -> None:
    docs = with_docs(risk=[{"scope": "y:other", "tier": "high"}], approval_tiers=[{"tier": "high"}])
    assert await decide.result(docs, delegated_input()) == allow("caracal-billing-mint")


async def test_matched_declarations_deduplicated_and_sorted(decide: Decide) -> None:
    low = {"tier": "low"}
    high = {"tier": "high", "ttl_seconds": 60}
    docs = with_docs(
        risk=[{"scope": "x:read", "tier": "low"}, {"scope": "x:write", "tier": "high"}],
        approval_tiers=[low, high, low],
    )
    result = await decide.result(docs, delegated_input(scopes=["x:read", "x:write"]))
    tiers = result["diagnostics"][0]["step_up_required"]["tiers"]
    assert sorted(tiers, key=json.dumps) == sorted([low, high], key=json.dumps)
    assert len(tiers) == 2


async def test_workload_mint_carries_risk_diagnostics(decide: Decide) -> None:
    docs = {"risk": [{"scope": "x:write", "tier": "high"}], "approval_tiers": [{"tier": "high"}]}
    assert await decide.result(docs, workload_input()) == allow(
        "caracal-workload-mint",
        [
            {"step_up_required": {"type": "human_approval", "tiers": [{"tier": "high"}]}},
            {"risk": [{"scope": "x:write", "tier": "high"}]},
        ],
    )


async def test_mandate_use_ignores_risk(decide: Decide) -> None:
    docs = with_docs(risk=[{"scope": "x:read", "tier": "high"}], approval_tiers=[{"tier": "high"}])
    assert await decide.result(docs, use_input()) == allow("caracal-billing-use")


@pytest.mark.parametrize(
    "risk",
    [
        {"a": 1},
        [{"scope": "x:read"}],
        [{"scope": "", "tier": "t"}],
        [{"scope": "x", "tier": 1}],
        ["x:read"],
        "x",
        5,
        None,
    ],
)
async def test_malformed_risk_denies_mints(decide: Decide, risk: Any) -> None:
    docs = with_docs(risk=risk)
    assert await decide.reason(docs, delegated_input()) == "malformed_risk_data"
    assert await decide.reason(docs, workload_input()) == "malformed_risk_data"


@pytest.mark.parametrize(
    "approval",
    [
        [{"tier": "high", "ttl_seconds": 1.5}],
        [{"tier": "high", "ttl_seconds": 0}],
        [{"tier": "high", "ttl_seconds": "60"}],
        [{"tier": "high", "approver": "boss"}],
        [{"tier": "high", "approver": None}],
        [{"tier": "high", "privacy": "secret"}],
        [{"approver": "operator"}],
        [{"tier": ""}],
        {"tier": "high"},
        "high",
        [["high"]],
    ],
)
async def test_malformed_approval_denies_mints(decide: Decide, approval: Any) -> None:
    docs = with_docs(approval_tiers=approval)
    assert await decide.reason(docs, delegated_input()) == "malformed_approval_data"
    assert await decide.reason(docs, workload_input()) == "malformed_approval_data"


@pytest.mark.parametrize(
    "approval",
    [
        [{"tier": "high", "ttl_seconds": 1800.0, "approver": "any", "privacy": "anonymous"}],
        [{"tier": "high", "approver": "subject", "privacy": "pseudonymous"}],
        [{"tier": "high", "ttl_seconds": 1}],
        [],
    ],
)
async def test_valid_declarations_are_not_malformed(decide: Decide, approval: Any) -> None:
    docs = with_docs(approval_tiers=approval)
    assert (await decide.result(docs, delegated_input()))["decision"] == "allow"


async def test_both_malformed_reports_risk(decide: Decide) -> None:
    docs = with_docs(risk={"a": 1}, approval_tiers=[{"tier": "high", "approver": "boss"}])
    assert await decide.reason(docs, delegated_input()) == "malformed_risk_data"


async def test_malformed_data_does_not_affect_mandate_use(decide: Decide) -> None:
    docs = with_docs(risk={"a": 1}, approval_tiers="x")
    assert await decide.result(docs, use_input()) == allow("caracal-billing-use")


async def test_conflicting_tiers_for_a_requested_scope_fail_evaluation(decide: Decide) -> None:
    docs = with_docs(risk=[{"scope": "x:read", "tier": "high"}, {"scope": "x:read", "tier": "low"}])
    message = await decide.failure(docs, delegated_input())
    assert "multiple outputs" in message
    # the same conflict on a scope nobody asked for has no effect
    assert await decide.result(docs, delegated_input(scopes=["x:write"])) == allow(
        "caracal-billing-mint"
    )


async def test_same_tier_twice_is_not_a_conflict(decide: Decide) -> None:
    docs = with_docs(risk=[{"scope": "x:read", "tier": "low"}, {"scope": "x:read", "tier": "low"}])
    result = await decide.result(docs, delegated_input())
    assert result["diagnostics"] == [{"risk": [{"scope": "x:read", "tier": "low"}]}]


# --- workload mint -------------------------------------------------------------------------


async def test_workload_mint_allows_without_grants(decide: Decide) -> None:
    assert await decide.result(None, workload_input()) == allow("caracal-workload-mint")
    assert await decide.result(BASE, workload_input()) == allow("caracal-workload-mint")


@pytest.mark.parametrize(
    "change",
    [
        {"context": {"requested_scopes": ["x"], "agent_session_id": "s"}},
        {"context": {"requested_scopes": ["x"], "subject_claims": {}}},
        {"delegation_edge": {"id": "e"}},
        {"principal": {"type": "workload"}},
        {"action": {"id": "Mint"}},
    ],
)
async def test_workload_variants_match_no_rule(decide: Decide, change: dict[str, Any]) -> None:
    inp = workload_input()
    inp.update(change)
    assert await decide.reason(BASE, inp) == "no_rule_matched"


async def test_restricted_workload(decide: Decide) -> None:
    assert await decide.reason({"restrict": ["x"]}, workload_input()) == "restriction_active"


async def test_bootstrap_and_workload_together_fail_evaluation(decide: Decide) -> None:
    inp = bootstrap_input()
    inp["principal"]["type"] = "Workload"
    inp["action"] = {"id": "CredentialInjection"}
    message = await decide.failure(BASE, inp)
    assert "multiple outputs" in message
    # without ownership only the workload path holds
    inp["principal"]["id"] = "someone-else"
    assert await decide.result(BASE, inp) == allow("caracal-workload-mint")


# --- mandate use ---------------------------------------------------------------------------


async def test_mandate_use_allows(decide: Decide) -> None:
    assert await decide.result(BASE, use_input()) == allow("caracal-billing-use")
    spaced = use_input(scope="  x:read   x:write ")
    assert await decide.result(BASE, spaced) == allow("caracal-billing-use")


@pytest.mark.parametrize("target", [["res://b"], "res://a", [], None, {"t": "res://b"}])
async def test_mandate_target_mismatch(decide: Decide, target: Any) -> None:
    assert await decide.reason(BASE, use_input(target=target)) == "mandate_target_mismatch"


async def test_mandate_target_object_values_are_members(decide: Decide) -> None:
    inp = use_input(target={"t": "res://a"})
    assert await decide.result(BASE, inp) == allow("caracal-billing-use")


async def test_mandate_use_non_owner(decide: Decide) -> None:
    inp = use_input()
    inp["principal"]["id"] = "app-2"
    assert await decide.reason(BASE, inp) == "resource_not_granted"


async def test_mandate_use_role_missing_a_scope(decide: Decide) -> None:
    inp = use_input()
    inp["principal"]["labels"] = ["ro"]
    assert await decide.reason(BASE, inp) == "role_scope_mismatch"


@pytest.mark.parametrize(
    ("claims", "context"),
    [
        ({}, {"requested_scopes": ["x:read"]}),
        ({"delegation_edge_id": ""}, {}),
        ({"scope": ""}, {}),
        ({"scope": ["x:read"]}, {}),
        ({"scope": "   "}, {}),
    ],
)
async def test_mandate_use_variants(
    decide: Decide, claims: dict[str, Any], context: dict[str, Any]
) -> None:
    inp = use_input(**claims)
    inp["context"].update(context)
    assert await decide.reason(BASE, inp) == "no_rule_matched"


@pytest.mark.parametrize("edge_id", [None, False, 7, {"id": "e1"}])
async def test_any_non_empty_edge_id_presents_a_mandate(decide: Decide, edge_id: Any) -> None:
    # defined and different from "" (a non-string counts as different)
    inp = use_input(delegation_edge_id=edge_id)
    assert await decide.result(BASE, inp) == allow("caracal-billing-use")


# --- data document conflicts ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["grants", "app_ids"])
async def test_conflicting_data_rule_across_modules_fails_evaluation(
    rego_engine: RegoEngine, plan: str, name: str
) -> None:
    first = module(BASE, plan, 1)
    second = module({name: {"res://a": {"application": "other"}}}, plan, 2)
    evaluation = await rego_engine.evaluate([first, second], bootstrap_input())
    assert evaluation.result is None
    assert evaluation.failure is not None
    assert evaluation.failure.kind == FailureKind.EVALUATION
    assert "multiple outputs" in evaluation.failure.message


async def test_identical_data_rule_across_modules_is_fine(
    rego_engine: RegoEngine, plan: str
) -> None:
    first = module(BASE, plan, 1)
    second = module(BASE, plan, 2)
    evaluation = await rego_engine.evaluate([first, second], bootstrap_input())
    assert evaluation.result == allow("caracal-bootstrap")


async def test_data_split_across_modules(rego_engine: RegoEngine, plan: str) -> None:
    first = module({"app_ids": APP_IDS}, plan, 1)
    second = module({"grants": GRANTS}, plan, 2)
    evaluation = await rego_engine.evaluate([first, second], delegated_input())
    assert evaluation.result == allow("caracal-billing-mint")


async def test_mixed_json_and_rego_modules(rego_engine: RegoEngine) -> None:
    first = module({"app_ids": APP_IDS}, "data", 1)
    second = module({"grants": GRANTS}, "rego", 2)
    evaluation = await rego_engine.evaluate([first, second], delegated_input())
    assert evaluation.result == allow("caracal-billing-mint")
