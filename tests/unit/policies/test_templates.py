"""Every template (policies.md §7) validates, compiles and builds into a working bundle."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from caracal_api.policies import datadocs, validation
from caracal_api.policies.contract import BundleModule, sha256_hex
from caracal_api.policies.engine import RegoEngine
from caracal_api.templates.catalog import TEMPLATES, catalog

EXPECTED_DATA: dict[str, dict[str, Any]] = {
    "application-bindings": {"app_ids": {"billing": "app-billing", "reports": "app-reports"}},
    "resource-grants": {
        "grants": {
            "resource://example": {
                "application": "billing",
                "roles": {"billing-agent": ["example:read", "example:write"]},
            }
        }
    },
    "label-confinement": {
        "confinement": [{"label_prefix": "customer:", "scopes": ["example:read"]}]
    },
    "zone-restriction": {"restrict": {}},
    "approval-gates": {
        "risk": [{"scope": "example:write", "tier": "high"}],
        "approval_tiers": [
            {"tier": "high", "approver": "operator", "ttl_seconds": 1800, "privacy": "identified"}
        ],
    },
}


def test_catalog_order_names_and_shape() -> None:
    items = catalog()
    assert [t["id"] for t in items] == list(EXPECTED_DATA)
    assert [t["name"] for t in items] == [
        "Application Bindings",
        "Resource Grants",
        "Label Confinement",
        "Zone Restriction",
        "Approval Gates",
    ]
    for item in items:
        assert set(item) == {"id", "name", "description", "content"}
        assert all(isinstance(v, str) and v for v in item.values())
    assert catalog() == items
    items[0]["id"] = "mutated"
    assert catalog()[0]["id"] == "application-bindings"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["id"])
def test_template_layout_and_static_validation(template: dict[str, str]) -> None:
    content = template["content"]
    assert content.startswith(
        "# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\n"
    )
    assert content.endswith("\n")
    assert re.search(r"^package caracal\.authz$", content, re.M)
    static = validation.validate_static(content)
    assert static.ok, static.code
    assert set(static.rules) == set(EXPECTED_DATA[template["id"]])
    assert "result" not in static.rules
    preview = validation.preview(content, static)
    assert preview["package"] == "caracal.authz"
    assert preview["default_result"] is False


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["id"])
def test_template_values_are_the_specified_data(template: dict[str, str]) -> None:
    statements = datadocs.json_statements(template["content"])
    assert statements is not None
    assert {name: json.loads(text) for name, text in statements} == EXPECTED_DATA[template["id"]]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["id"])
async def test_template_compiles(rego_engine: RegoEngine, template: dict[str, str]) -> None:
    static = validation.validate_static(template["content"])
    assert await rego_engine.check_content(template["content"], static) is None


async def test_all_templates_form_one_bundle(rego_engine: RegoEngine) -> None:
    modules = [
        BundleModule(f"tpl-{t['id']}", t["content"], sha256_hex(t["content"])) for t in TEMPLATES
    ]
    assert await rego_engine.verify_bundle(modules) is None
    # application key "billing" is bound to app-billing, which owns resource://example
    evaluation = await rego_engine.evaluate(
        modules,
        {
            "principal": {"id": "app-billing", "labels": ["billing-agent"]},
            "resource": {"identifier": "resource://example"},
            "context": {"requested_scopes": ["example:write"], "agent_session_id": "s"},
            "delegation_edge": {"id": "e", "scopes": ["example:read", "example:write"]},
        },
    )
    assert evaluation.result == {
        "decision": "allow",
        "evaluation_status": "complete",
        "determining_policies": [{"policy": "caracal-billing-mint"}],
        "diagnostics": [
            {
                "step_up_required": {
                    "type": "human_approval",
                    "tiers": [
                        {
                            "tier": "high",
                            "approver": "operator",
                            "ttl_seconds": 1800,
                            "privacy": "identified",
                        }
                    ],
                }
            },
            {"risk": [{"scope": "example:write", "tier": "high"}]},
        ],
    }
