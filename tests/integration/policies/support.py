"""Helpers of the policy, policy-set and template integration tests."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import text

from tests.conftest import Api

HEADER = "# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\n"
SLOW_RULE = (
    "grants := count({[i, j] |\n"
    "  some i in numbers.range(1, 1000)\n"
    "  some j in numbers.range(1, 1000)\n"
    "})\n"
)
SLOW = HEADER + SLOW_RULE


def doc(**rules: Any) -> str:
    """A data document with one `<rule> := <JSON>` line per keyword."""
    return HEADER + "".join(f"{name} := {json.dumps(value)}\n" for name, value in rules.items())


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def sql(api: Api, statement: str, **params: Any) -> list[Any]:
    """One statement in its own transaction; the rows, if any."""
    async with api.runtime.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def create_policy(
    api: Api, zone_id: str, content: str | None = None, *, name: str | None = None, **kw: Any
) -> dict[str, Any]:
    body = {"name": name or unique("policy"), "content": content or doc(app_ids={"a": "b"})}
    response = await api.post(f"/v1/zones/{zone_id}/policies", json=body, **kw)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_set(api: Api, zone_id: str, name: str | None = None) -> dict[str, Any]:
    response = await api.post(
        f"/v1/zones/{zone_id}/policy-sets", json={"name": name or unique("set")}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def set_version(api: Api, zone_id: str, set_id: str, *pv_ids: str) -> dict[str, Any]:
    manifest = [{"policy_version_id": pv} for pv in pv_ids]
    response = await api.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/versions", json={"manifest": manifest}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def activate(api: Api, zone_id: str, set_id: str, version_id: str) -> dict[str, Any]:
    response = await api.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/activate", json={"version_id": version_id}
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def active_set(
    api: Api, zone_id: str, content: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A policy, a set with one version of it, activated: (policy, set, set version)."""
    policy = await create_policy(api, zone_id, content)
    policy_set = await create_set(api, zone_id)
    version = await set_version(api, zone_id, policy_set["id"], policy["version_id"])
    await activate(api, zone_id, policy_set["id"], version["version_id"])
    return policy, policy_set, version


async def invalidations(api: Api, set_id: str) -> list[Any]:
    return await sql(
        api,
        "SELECT id, payload_json, dispatched_at FROM event_outbox"
        " WHERE stream_name = 'caracal.policy.invalidate'"
        " AND payload_json->>'policy_set_id' = :set ORDER BY created_at, id",
        set=set_id,
    )


async def audit_rows(api: Api, request_id: str) -> list[Any]:
    return await sql(
        api,
        "SELECT status_code, entity_type, entity_id, zone_id, payload_json"
        " FROM admin_audit_events WHERE request_id = :r",
        r=request_id,
    )
