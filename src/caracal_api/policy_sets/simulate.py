"""Simulation (policies.md PS9): a dry run of one set version, evaluated locally."""

from __future__ import annotations

import json
from typing import Any

from caracal_api.policies.contract import CONTRACT_SHA256, CONTRACT_VERSION
from caracal_api.policies.engine import RegoEngine
from caracal_api.policies.validation import SCHEMA_VERSION
from caracal_api.policy_sets.manifest import CheckedManifest
from caracal_api.policy_sets.sts import StsClient
from caracal_api.policy_sets.verification import bundle_error

EXECUTED_REASON = "evaluated locally with the embedded decision contract; no binding was changed"
NOT_EXECUTED_REASON = (
    "no input supplied; manifest contract and bundle compiled without evaluating a decision"
)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def input_warnings(zone_id: str, document: dict[str, Any]) -> list[str]:
    """Step 5, in order."""
    warnings: list[str] = []
    if "schema_version" in document and document["schema_version"] != SCHEMA_VERSION:
        warnings.append(f"input_schema_mismatch:{_shown(document['schema_version'])}")
    principal = document.get("principal")
    if not isinstance(principal, dict) or principal.get("zone_id") != zone_id:
        warnings.append("principal_zone_mismatch")
    for key in ("resource", "action", "context"):
        if not isinstance(document.get(key), dict):
            warnings.append(f"missing_{key}")
    return warnings


async def evaluate_locally(
    engine: RegoEngine, checked: CheckedManifest, document: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    """Step 6: `(explanation, result, warnings)`; raises for bundle failures and busy."""
    if "schema_version" in document and document["schema_version"] != SCHEMA_VERSION:
        reason = f"unsupported input schema_version {_shown(document['schema_version'])}"
        return {"evaluation": "failed", "engine": "embedded", "reason": reason}, None, []
    evaluation = await engine.evaluate(checked.modules, document)
    failure = evaluation.failure
    if failure is not None and failure.is_compile:
        raise bundle_error(failure)
    if failure is not None:
        warning = "policy_evaluation_timeout" if failure.is_timeout else "policy_evaluation_failed"
        explanation = {"evaluation": "failed", "engine": "embedded", "reason": failure.message}
        return explanation, None, [warning]
    assert evaluation.result is not None
    explanation = {
        "evaluation": "executed",
        "engine": "embedded",
        "decision": evaluation.result["decision"],
        "decision_contract_version": CONTRACT_VERSION,
        "decision_contract_sha256": CONTRACT_SHA256,
        "reason": EXECUTED_REASON,
    }
    return explanation, evaluation.result, []


async def simulate_on_sts(
    sts: StsClient,
    set_id: str,
    version_id: str,
    manifest_sha256: str,
    checked: CheckedManifest,
    document: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """Step 8: `(explanation.sts, warnings)`."""
    reply = await sts.simulate(set_id, version_id, manifest_sha256, checked.modules, document)
    if reply.network_error is not None:
        message = reply.network_error
        return {"evaluation": "failed", "reason": message}, [
            f"sts_simulation_unreachable:{message}"
        ]
    try:
        data = reply.json()
    except ValueError:
        message = "not JSON"
        return (
            {"evaluation": "failed", "reason": f"invalid STS response: {message}"},
            [f"sts_simulation_invalid_response:{message}"],
        )
    if not reply.ok:
        error = reply.error_code()
        return {"evaluation": "failed", "reason": error}, [f"sts_simulation_failed:{error}"]
    result = data.get("result") if isinstance(data, dict) else None
    decision = result.get("decision") if isinstance(result, dict) else None
    if decision not in ("allow", "deny"):
        message = "no result decision"
        return (
            {"evaluation": "failed", "reason": f"invalid STS response: {message}"},
            [f"sts_simulation_invalid_response:{message}"],
        )
    return {"evaluation": "executed", "decision": decision}, []


async def simulate(
    engine: RegoEngine,
    sts: StsClient | None,
    *,
    zone_id: str,
    set_id: str,
    version: Any,
    ids: list[str],
    checked: CheckedManifest,
    document: dict[str, Any] | None,
) -> dict[str, Any]:
    """Steps 4–9 (the bundle is already verified)."""
    warnings: list[str] = []
    result: dict[str, Any] | None = None
    if document is None:
        explanation: dict[str, Any] = {"evaluation": "not_executed", "reason": NOT_EXECUTED_REASON}
        would_activate = True
    else:
        warnings = input_warnings(zone_id, document)
        would_activate = not warnings
        evaluated = dict(document)
        evaluated.setdefault("schema_version", SCHEMA_VERSION)
        explanation, result, evaluation_warnings = await evaluate_locally(
            engine, checked, evaluated
        )
        warnings += evaluation_warnings
        if sts is not None:
            sts_view, sts_warnings = await simulate_on_sts(
                sts, set_id, version["id"], version["manifest_sha256"], checked, evaluated
            )
            explanation["sts"] = sts_view
            warnings += sts_warnings
            if (
                explanation.get("evaluation") == "executed"
                and sts_view.get("evaluation") == "executed"
                and sts_view.get("decision") != explanation.get("decision")
            ):
                warnings.append("sts_decision_mismatch")
    return {
        "dry_run": True,
        "would_activate": would_activate,
        "policy_set_id": set_id,
        "version_id": version["id"],
        "schema_version": version["schema_version"],
        "input_schema_version": SCHEMA_VERSION,
        "manifest_sha256": version["manifest_sha256"],
        "policies": ids,
        "warnings": warnings,
        "explanation": explanation,
        "result": result,
    }
