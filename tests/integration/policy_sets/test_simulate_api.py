"""PS9 simulate and the decision contract through it (checklist 24–26, 29, 31–41)."""

from __future__ import annotations

from typing import Any

import pytest

from caracal_api.metrics import POLICY_BUNDLE_CACHE, REGO_DURATION
from caracal_api.policies.contract import CONTRACT_SHA256
from tests.conftest import Api, assert_envelope
from tests.integration.policies.support import (
    create_policy,
    create_set,
    doc,
    set_version,
    sql,
)
from tests.integration.policy_sets.test_policy_sets_api import stored_version

GRANTS = {
    "app_ids": {"billing": "app-1"},
    "grants": {"res://a": {"application": "billing", "roles": {"r": ["x:read", "x:write"]}}},
}


async def simulation(
    api: Api, content: str | list[str] | None = None
) -> tuple[str, str, dict[str, Any]]:
    """(zone, set id, set version) of a fresh set over the given documents."""
    zone = (await api.zone())["id"]
    contents = [content] if isinstance(content, str) else content or [doc(**GRANTS)]
    ids = [(await create_policy(api, zone, c))["version_id"] for c in contents]
    policy_set = await create_set(api, zone)
    return zone, policy_set["id"], await set_version(api, zone, policy_set["id"], *ids)


async def simulate(api: Api, zone: str, set_id: str, body: Any) -> Any:
    return await api.post(f"/v1/zones/{zone}/policy-sets/{set_id}/simulate", json=body)


def well_formed(zone: str, **overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "principal": {"zone_id": zone, "id": "app-1", "labels": ["r"]},
        "resource": {"identifier": "res://a"},
        "action": {"id": "Mint"},
        "context": {"requested_scopes": ["x:read"], "agent_session_id": "s-1"},
        "delegation_edge": {"id": "e-1", "scopes": ["x:read"]},
    }
    document.update(overrides)
    return document


async def test_without_input(api: Api) -> None:
    zone, set_id, version = await simulation(api)
    response = await simulate(api, zone, set_id, {"version_id": version["id"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [
        "dry_run", "would_activate", "policy_set_id", "version_id", "schema_version",
        "input_schema_version", "manifest_sha256", "policies", "warnings", "explanation",
        "result",
    ]  # fmt: skip
    detail = (
        await api.get(f"/v1/zones/{zone}/policy-sets/{set_id}/versions/{version['id']}")
    ).json()
    assert body["dry_run"] is True
    assert body["would_activate"] is True
    assert body["warnings"] == []
    assert body["explanation"] == {
        "evaluation": "not_executed",
        "reason": "no input supplied; manifest contract and bundle compiled without evaluating"
        " a decision",
    }
    assert body["result"] is None
    assert body["policies"] == detail["policies"]
    assert body["manifest_sha256"] == version["manifest_sha256"]
    assert body["schema_version"] == body["input_schema_version"] == "2026-05-20"
    current = (await api.get(f"/v1/zones/{zone}/policy-sets/{set_id}")).json()
    assert current["active_version_id"] is None
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events WHERE request_id = :r",
        r=response.headers["x-request-id"],
    )
    assert (audit[0].entity_type, audit[0].entity_id) == ("policy-sets", set_id)
    assert audit[0].payload_json["change_kind"] == "action"


async def test_input_warnings(api: Api) -> None:
    zone, set_id, version = await simulation(api)
    response = await simulate(
        api,
        zone,
        set_id,
        {"version_id": version["id"], "input": {"principal": {"zone_id": "other"}}},
    )
    body = response.json()
    assert body["would_activate"] is False
    assert body["warnings"] == [
        "principal_zone_mismatch",
        "missing_resource",
        "missing_action",
        "missing_context",
    ]
    assert body["explanation"]["evaluation"] == "executed"


async def test_well_formed_input_is_evaluated(api: Api) -> None:
    zone, set_id, version = await simulation(api)
    body = (
        await simulate(api, zone, set_id, {"version_id": version["id"], "input": well_formed(zone)})
    ).json()
    assert body["would_activate"] is True
    assert body["warnings"] == []
    assert body["explanation"] == {
        "evaluation": "executed",
        "engine": "embedded",
        "decision": "allow",
        "decision_contract_version": "2026-07-12",
        "decision_contract_sha256": CONTRACT_SHA256,
        "reason": "evaluated locally with the embedded decision contract; no binding was changed",
    }
    assert body["result"] == {
        "decision": "allow",
        "evaluation_status": "complete",
        "determining_policies": [{"policy": "caracal-billing-mint"}],
        "diagnostics": [],
    }


@pytest.mark.parametrize(("value", "shown"), [("bad", "bad"), (5, "5"), ({"v": 1}, '{"v":1}')])
async def test_input_schema_mismatch_skips_evaluation(api: Api, value: Any, shown: str) -> None:
    zone, set_id, version = await simulation(api)
    document = well_formed(zone, schema_version=value)
    body = (
        await simulate(api, zone, set_id, {"version_id": version["id"], "input": document})
    ).json()
    assert body["warnings"] == [f"input_schema_mismatch:{shown}"]
    assert body["would_activate"] is False
    assert body["explanation"] == {
        "evaluation": "failed",
        "engine": "embedded",
        "reason": f"unsupported input schema_version {shown}",
    }
    assert body["result"] is None


async def test_body_and_lookup_errors(api: Api) -> None:
    zone, set_id, version = await simulation(api)
    for body in (
        {},
        {"input": {}},
        {"version_id": version["id"], "input": "x"},
        {"version_id": version["id"], "input": []},
        {"version_id": version["id"], "input": 1},
        {"version_id": version["id"], "input": None},
    ):
        assert_envelope(await simulate(api, zone, set_id, body), 400, "invalid_body")
    assert_envelope(
        await simulate(api, zone, set_id, {"version_id": "nope"}), 404, "version_not_found"
    )


async def test_mixed_schema_versions(api: Api) -> None:
    zone, set_id, version = await simulation(api)
    detail = (
        await api.get(f"/v1/zones/{zone}/policy-sets/{set_id}/versions/{version['id']}")
    ).json()
    policy_id = (
        await sql(
            api, "SELECT policy_id FROM policy_versions WHERE id = :id", id=detail["policies"][0]
        )
    )[0].policy_id
    old = await stored_version(api, policy_id, doc(grants={}), "1900-01-01")
    mixed = "psv-mixed-" + version["id"][-8:]
    await sql(
        api,
        "INSERT INTO policy_set_versions (id, policy_set_id, version, manifest_json,"
        " manifest_sha256, schema_version, created_by)"
        " VALUES (:id, :s, 99, CAST(:m AS jsonb), 'x', '2026-05-20', 'test')",
        id=mixed,
        s=set_id,
        m=f'[{{"policy_version_id": "{detail["policies"][0]}"}}, {{"policy_version_id": "{old}"}}]',
    )
    body = assert_envelope(
        await simulate(api, zone, set_id, {"version_id": mixed}), 422, "invalid_policy_contract"
    )
    assert "does not match policy set schema" in body["error_description"]


def cache(result: str) -> float:
    return float(POLICY_BUNDLE_CACHE.labels(result)._value.get())


def engine_seconds() -> float:
    for metric in REGO_DURATION.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("kind") == "evaluate":
                return float(sample.value)
    return 0.0


async def test_second_simulation_hits_the_bundle_cache(api: Api) -> None:
    zone, set_id, version = await simulation(api, doc(**GRANTS) + "# cache\n")
    body = {"version_id": version["id"], "input": well_formed(zone)}
    assert (await simulate(api, zone, set_id, body)).status_code == 200
    hits, spent = cache("hit"), engine_seconds()
    second = await simulate(api, zone, set_id, body)
    assert second.json()["result"]["decision"] == "allow"
    assert cache("hit") == hits + 1
    assert engine_seconds() - spent < 0.005


# --- the decision contract through PS9 (the full matrix runs in the unit tests) ----------


async def decide(api: Api, content: str, **overrides: Any) -> dict[str, Any]:
    zone, set_id, version = await simulation(api, content)
    document = well_formed(zone, **overrides)
    response = await simulate(api, zone, set_id, {"version_id": version["id"], "input": document})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_contract_default_deny_and_paths(api: Api) -> None:
    zone, set_id, version = await simulation(api, doc(restrict={}))
    empty = await simulate(api, zone, set_id, {"version_id": version["id"], "input": {}})
    assert empty.json()["result"] == {
        "decision": "deny",
        "evaluation_status": "complete",
        "determining_policies": [],
        "diagnostics": [{"reason": "no_rule_matched"}],
    }
    bootstrap = await decide(
        api, doc(**GRANTS), context={"requested_scopes": ["agent:lifecycle"]}, delegation_edge=False
    )
    assert bootstrap["result"]["determining_policies"] == [{"policy": "caracal-bootstrap"}]
    restricted = await decide(api, doc(**GRANTS, restrict={"freeze": True}))
    assert restricted["result"]["diagnostics"] == [{"reason": "restriction_active"}]
    workload = await decide(
        api,
        doc(restrict=[]),
        principal={"zone_id": "z", "type": "Workload"},
        action={"id": "CredentialInjection"},
        context={"requested_scopes": ["x"]},
        delegation_edge=False,
    )
    assert workload["result"]["determining_policies"] == [{"policy": "caracal-workload-mint"}]


async def test_contract_risk_and_malformed_data(api: Api) -> None:
    gated = await decide(
        api,
        doc(
            **GRANTS,
            risk=[{"scope": "x:read", "tier": "high"}],
            approval_tiers=[{"tier": "high", "note": "kept"}],
        ),
    )
    assert gated["result"]["decision"] == "allow"
    assert gated["result"]["diagnostics"] == [
        {
            "step_up_required": {
                "type": "human_approval",
                "tiers": [{"tier": "high", "note": "kept"}],
            }
        },
        {"risk": [{"scope": "x:read", "tier": "high"}]},
    ]
    malformed = await decide(api, doc(**GRANTS, risk={"a": 1}))
    assert malformed["result"]["diagnostics"] == [{"reason": "malformed_risk_data"}]


async def test_evaluation_failure_is_never_a_decision(api: Api) -> None:
    conflict = await decide(
        api,
        doc(**GRANTS, risk=[{"scope": "x:read", "tier": "a"}, {"scope": "x:read", "tier": "b"}]),
    )
    assert conflict["warnings"] == ["policy_evaluation_failed"]
    assert conflict["explanation"]["evaluation"] == "failed"
    assert "multiple outputs" in conflict["explanation"]["reason"]
    assert conflict["result"] is None
