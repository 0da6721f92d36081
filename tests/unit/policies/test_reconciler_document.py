"""The grant document the caracalai-admin reconcilers author validates and decides."""

from __future__ import annotations

from caracalai_admin.ensure import ResourceGrant, author_grants_document

from caracal_api.policies import datadocs, validation
from caracal_api.policies.contract import BundleModule, sha256_hex
from caracal_api.policies.engine import RegoEngine


def grants(count: int) -> list[ResourceGrant]:
    return [
        ResourceGrant(f"app-{i % 50}", f"resource://r{i}", ["data:read", "data:write"], None)
        for i in range(count)
    ]


async def test_reconciler_document_validates_compiles_and_decides(rego_engine: RegoEngine) -> None:
    content = author_grants_document(grants(10))
    static = validation.validate_static(content)
    assert static.ok, static.code
    assert static.rules == ("app_ids", "grants")
    assert datadocs.json_statements(content) is not None
    assert await rego_engine.check_content(content, static) is None
    module = BundleModule("pv-reconciler", content, sha256_hex(content))
    evaluation = await rego_engine.evaluate(
        [module],
        {
            "principal": {"id": "app-3", "labels": ["app-3"]},
            "resource": {"identifier": "resource://r3"},
            "context": {"requested_scopes": ["data:read"], "agent_session_id": "s"},
            "delegation_edge": {"id": "e", "scopes": ["data:read"]},
        },
    )
    assert evaluation.result is not None
    assert evaluation.result["determining_policies"] == [{"policy": "caracal-app-3-mint"}]


async def test_large_reconciler_document_validates(rego_engine: RegoEngine) -> None:
    content = author_grants_document(grants(2500))
    assert len(content) > 150_000
    static = validation.validate_static(content)
    assert static.ok, static.code
    assert await rego_engine.check_content(content, static) is None
