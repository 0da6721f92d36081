"""Engine limits over HTTP: a busy pool answers 503 and writes nothing (checklist 43)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from caracal_api.metrics import REGO_OPERATIONS
from tests.conftest import Api, AppFactory, assert_envelope
from tests.integration.policies.support import (
    SLOW,
    create_policy,
    create_set,
    doc,
    set_version,
    sql,
)

TIMEOUT_MS = 1500


def busy_count() -> float:
    return sum(
        float(REGO_OPERATIONS.labels(kind, "busy")._value.get()) for kind in ("compile", "evaluate")
    )


async def footprint(api: Api, zone: str) -> tuple[Any, ...]:
    rows = await sql(
        api,
        "SELECT (SELECT count(*) FROM policies WHERE zone_id = :z),"
        " (SELECT count(*) FROM policy_versions v JOIN policies p ON p.id = v.policy_id"
        "   WHERE p.zone_id = :z),"
        " (SELECT count(*) FROM policy_set_versions v JOIN policy_sets s ON s.id = v.policy_set_id"
        "   WHERE s.zone_id = :z),"
        " (SELECT count(*) FROM policy_set_bindings WHERE zone_id = :z"
        "   AND active_version_id IS NOT NULL),"
        " (SELECT count(*) FROM event_outbox WHERE payload_json->>'zone_id' = :z)",
        z=zone,
    )
    return tuple(rows[0])


async def test_every_rego_route_answers_busy_and_writes_nothing(
    api: Api, make_api: AppFactory
) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone, doc(grants={}))
    policy_set = await create_set(api, zone)
    version = await set_version(api, zone, policy_set["id"], policy["version_id"])
    fresh = await create_policy(api, zone, doc(risk=[]))
    before = await footprint(api, zone)

    busy_api = await make_api(rego_workers=1, rego_timeout_ms=TIMEOUT_MS)
    base = f"/v1/zones/{zone}"
    calls = [
        ("POST", "/v1/policies/validate", {"content": doc(grants={})}),
        ("POST", f"{base}/policies", {"name": "busy", "content": doc(grants={})}),
        ("POST", f"{base}/policies/{policy['id']}/versions", {"content": doc(grants={"a": 1})}),
        (
            "POST",
            f"{base}/policy-sets/{policy_set['id']}/versions",
            {"manifest": [{"policy_version_id": fresh["version_id"]}]},
        ),
        ("POST", f"{base}/policy-sets/{policy_set['id']}/activate", {"version_id": version["id"]}),
        ("POST", f"{base}/policy-sets/{policy_set['id']}/simulate", {"version_id": version["id"]}),
    ]
    counted = busy_count()
    holder = asyncio.create_task(busy_api.post("/v1/policies/validate", json={"content": SLOW}))
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    responses = await asyncio.gather(
        *(busy_api.request(method, path, json=body) for method, path, body in calls)
    )
    elapsed = time.perf_counter() - started
    for response in responses:
        assert_envelope(response, 503, "rego_engine_busy")
        assert response.headers["Retry-After"] == "1"
    assert elapsed >= TIMEOUT_MS / 1000 * 0.9
    assert busy_count() >= counted + len(calls)
    held = await holder
    assert held.json()["error_description"] == "rego_evaluation_timeout"
    assert await footprint(api, zone) == before

    # once a worker is free again the same calls succeed
    statuses = []
    for method, path, body in calls:
        statuses.append((await busy_api.request(method, path, json=body)).status_code)
    assert statuses == [200, 201, 201, 201, 202, 200]
