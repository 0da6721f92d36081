"""PS7 activation and PS8 activation status (checklist 19–23, 44)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from caracal_api.kit.uow import WriteContext
from caracal_api.policy_sets import endpoints, service
from tests.conftest import Api, assert_envelope
from tests.integration.policies.support import (
    activate,
    active_set,
    create_policy,
    create_set,
    invalidations,
    set_version,
    sql,
)


async def status(api: Api, zone: str, set_id: str, query: str = "") -> Any:
    return await api.get(f"/v1/zones/{zone}/policy-sets/{set_id}/activation-status{query}")


async def test_activate(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    policy_set = await create_set(api, zone)
    version = await set_version(api, zone, policy_set["id"], policy["version_id"])
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/activate",
        json={"version_id": version["id"]},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert list(body) == ["activated", "version_id", "outbox_id", "status_url"]
    assert body["activated"] is True
    assert body["version_id"] == version["id"]
    url = urlsplit(body["status_url"])
    assert url.path == f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/activation-status"
    assert parse_qs(url.query) == {"version_id": [version["id"]], "outbox_id": [body["outbox_id"]]}
    one = (await api.get(f"/v1/zones/{zone}/policy-sets/{policy_set['id']}")).json()
    assert one["active_version_id"] == version["id"]
    listed = (await api.get(f"/v1/zones/{zone}/policy-sets")).json()
    assert listed["items"][0]["active_version_id"] == version["id"]
    followed = await api.get(body["status_url"])
    assert followed.status_code == 200, followed.text
    assert followed.json()["outbox"]["id"] == body["outbox_id"]
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, status_code, payload_json FROM admin_audit_events"
        " WHERE request_id = :r",
        r=response.headers["x-request-id"],
    )
    assert [(a.entity_type, a.entity_id, a.status_code) for a in audit] == [
        ("policy-sets", policy_set["id"], 202)
    ]
    assert audit[0].payload_json["changed_fields"] == ["version_id"]


async def test_one_event_per_activation_in_the_same_transaction(api: Api) -> None:
    zone = (await api.zone())["id"]
    _, policy_set, version = await active_set(api, zone)
    rows = await invalidations(api, policy_set["id"])
    assert len(rows) == 1
    assert rows[0].payload_json == {
        "zone_id": zone,
        "policy_set_id": policy_set["id"],
        "policy_set_version_id": version["id"],
    }
    # re-activating repeats everything, including the event
    await activate(api, zone, policy_set["id"], version["id"])
    assert len(await invalidations(api, policy_set["id"])) == 2


async def test_a_transaction_killed_before_commit_leaves_nothing(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    policy_set = await create_set(api, zone)
    version = await set_version(api, zone, policy_set["id"], policy["version_id"])
    ctx = WriteContext(
        actor=None,  # type: ignore[arg-type]
        request_id="req-killed",
        actor_label="test",
        operator_header=False,
        facts=None,  # type: ignore[arg-type]
    )

    class Killed(Exception):
        pass

    try:
        async with api.runtime.sessionmaker() as session, session.begin():
            result = await service.activate(session, ctx, zone, policy_set["id"], version["id"])
            assert result["activated"] is True
            pending = await session.execute(
                text("SELECT count(*) FROM event_outbox WHERE id = :id"),
                {"id": result["outbox_id"]},
            )
            assert pending.scalar_one() == 1
            raise Killed
    except Killed:
        pass
    assert await invalidations(api, policy_set["id"]) == []
    current = (await api.get(f"/v1/zones/{zone}/policy-sets/{policy_set['id']}")).json()
    assert current["active_version_id"] is None


async def test_activating_another_set_deactivates_the_first(api: Api) -> None:
    zone = (await api.zone())["id"]
    _, first, first_version = await active_set(api, zone)
    _, second, second_version = await active_set(api, zone)
    a = (await api.get(f"/v1/zones/{zone}/policy-sets/{first['id']}")).json()
    b = (await api.get(f"/v1/zones/{zone}/policy-sets/{second['id']}")).json()
    assert (a["active_version_id"], b["active_version_id"]) == (None, second_version["id"])
    # deactivated siblings get no event of their own
    assert len(await invalidations(api, first["id"])) == 1
    # rolling back to an earlier version is an activation like any other
    await activate(api, zone, first["id"], first_version["id"])
    a = (await api.get(f"/v1/zones/{zone}/policy-sets/{first['id']}")).json()
    assert a["active_version_id"] == first_version["id"]


async def test_rollback_within_one_set(api: Api) -> None:
    zone = (await api.zone())["id"]
    one = await create_policy(api, zone)
    two = await create_policy(api, zone)
    policy_set = await create_set(api, zone)
    v1 = await set_version(api, zone, policy_set["id"], one["version_id"])
    v2 = await set_version(api, zone, policy_set["id"], two["version_id"])
    await activate(api, zone, policy_set["id"], v2["id"])
    await activate(api, zone, policy_set["id"], v1["id"])
    current = (await api.get(f"/v1/zones/{zone}/policy-sets/{policy_set['id']}")).json()
    assert current["active_version_id"] == v1["id"]


async def test_concurrent_activations_leave_one_active_set(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    pairs = []
    for _ in range(10):
        policy_set = await create_set(api, zone)
        version = await set_version(api, zone, policy_set["id"], policy["version_id"])
        pairs.append((policy_set["id"], version["id"]))
    responses = await asyncio.gather(
        *(
            api.post(
                f"/v1/zones/{zone}/policy-sets/{set_id}/activate", json={"version_id": version}
            )
            for set_id, version in pairs
        )
    )
    assert [r.status_code for r in responses] == [202] * 10
    active = await sql(
        api,
        "SELECT policy_set_id, active_version_id FROM policy_set_bindings"
        " WHERE zone_id = :z AND active_version_id IS NOT NULL",
        z=zone,
    )
    assert len(active) == 1
    events = await sql(
        api,
        "SELECT id FROM event_outbox WHERE stream_name = 'caracal.policy.invalidate'"
        " AND payload_json->>'zone_id' = :z",
        z=zone,
    )
    assert sorted(e.id for e in events) == sorted(r.json()["outbox_id"] for r in responses)


async def test_activation_not_found_cases(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    a = await create_set(api, zone)
    b = await create_set(api, zone)
    b_version = await set_version(api, zone, b["id"], policy["version_id"])
    base = f"/v1/zones/{zone}/policy-sets/{a['id']}/activate"
    assert_envelope(await api.post(base, json={"version_id": "nope"}), 404, "version_not_found")
    other_set = await api.post(base, json={"version_id": b_version["id"]})
    assert_envelope(other_set, 404, "version_not_found")
    for body in ({}, {"version_id": ""}, {"version_id": 3}, {"version_id": "a b"}):
        assert_envelope(await api.post(base, json=body), 400, "invalid_body")
    await api.delete(f"/v1/zones/{zone}/policy-sets/{b['id']}")
    archived = await api.post(
        f"/v1/zones/{zone}/policy-sets/{b['id']}/activate", json={"version_id": b_version["id"]}
    )
    assert_envelope(archived, 404, "version_not_found")


# --- activation status ---------------------------------------------------------------------


async def test_status_before_activation_and_unknown_set(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy_set = await create_set(api, zone)
    assert_envelope(
        await status(api, zone, policy_set["id"]), 404, "active_policy_set_version_not_found"
    )
    assert_envelope(await status(api, zone, "nope"), 404, "policy_set_binding_not_found")
    bad = await status(api, zone, policy_set["id"], "?version_id=a%20b")
    assert_envelope(bad, 400, "invalid_query")
    assert_envelope(await status(api, zone, policy_set["id"], "?outbox_id="), 400, "invalid_query")


async def test_status_lifecycle(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    policy_set = await create_set(api, zone)
    v1 = await set_version(api, zone, policy_set["id"], policy["version_id"])
    v2 = await set_version(api, zone, policy_set["id"], policy["version_id"])
    activated = await activate(api, zone, policy_set["id"], v1["id"])

    body = (await status(api, zone, policy_set["id"])).json()
    assert list(body) == [
        "zone_id", "policy_set_id", "version_id", "active", "active_version_id",
        "manifest_sha256", "propagation_status", "outbox", "sts",
    ]  # fmt: skip
    assert body["version_id"] == v1["id"]
    assert body["active"] is True
    assert body["manifest_sha256"] == v1["manifest_sha256"]
    assert body["outbox"] == {
        "id": activated["outbox_id"],
        "state": "pending",
        "attempts": 0,
        "last_error": None,
        "dispatched_at": None,
    }
    assert body["propagation_status"] == "waiting_for_outbox"
    assert body["sts"] == {"state": "not_configured", "detail": "no STS is configured"}

    inactive = (await status(api, zone, policy_set["id"], f"?version_id={v2['id']}")).json()
    assert (inactive["active"], inactive["propagation_status"]) == (
        False,
        "waiting_for_activation",
    )
    assert inactive["outbox"]["state"] == "missing"
    assert inactive["manifest_sha256"] == v1["manifest_sha256"]

    await sql(
        api,
        "UPDATE event_outbox SET dispatched_at = now() WHERE id = :id",
        id=activated["outbox_id"],
    )
    body = (await status(api, zone, policy_set["id"])).json()
    assert body["outbox"]["state"] == "dispatched"
    assert body["outbox"]["dispatched_at"].endswith("Z")
    assert body["propagation_status"] == "waiting_for_sts"

    mismatched = await status(
        api, zone, policy_set["id"], f"?version_id={v2['id']}&outbox_id={activated['outbox_id']}"
    )
    assert mismatched.json()["outbox"]["state"] == "mismatch"
    missing = (await status(api, zone, policy_set["id"], "?outbox_id=gone")).json()
    assert missing["outbox"] == {
        "id": "gone", "state": "missing", "attempts": 0, "last_error": None, "dispatched_at": None,
    }  # fmt: skip
    assert missing["propagation_status"] == "waiting_for_outbox"


async def test_dead_row_fails_propagation(api: Api) -> None:
    zone = (await api.zone())["id"]
    _, policy_set, _ = await active_set(api, zone)
    await sql(
        api,
        "UPDATE event_outbox SET available_at = 'infinity', attempts = 100,"
        " last_error = 'redis down' WHERE payload_json->>'policy_set_id' = :s",
        s=policy_set["id"],
    )
    body = (await status(api, zone, policy_set["id"])).json()
    assert body["outbox"]["state"] == "dead"
    assert body["outbox"]["attempts"] == 100
    assert body["outbox"]["last_error"] == "redis down"
    assert body["propagation_status"] == "failed"


async def test_newest_invalidation_uses_its_index_and_survives_retention(api: Api) -> None:
    zone = (await api.zone())["id"]
    _, policy_set, version = await active_set(api, zone)
    for _ in range(3):
        await activate(api, zone, policy_set["id"], version["id"])
    rows = await invalidations(api, policy_set["id"])
    await sql(
        api,
        "UPDATE event_outbox SET dispatched_at = now() - interval '40 days'"
        " WHERE payload_json->>'policy_set_id' = :s",
        s=policy_set["id"],
    )
    # what outbox retention deletes: every dispatched row but the newest of the set
    await sql(api, "DELETE FROM event_outbox WHERE id = ANY(:ids)", ids=[r.id for r in rows[:-1]])
    body = (await status(api, zone, policy_set["id"])).json()
    assert body["outbox"]["id"] == rows[-1].id
    assert body["outbox"]["state"] == "dispatched"

    from caracal_api.policy_sets.repository import NEWEST_INVALIDATION

    async with api.runtime.engine.begin() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await conn.execute(
            text("EXPLAIN " + NEWEST_INVALIDATION),
            {"zone": zone, "set": policy_set["id"], "version": version["id"]},
        )
        lines = "\n".join(row[0] for row in plan)
    assert "event_outbox_invalidate_set_idx" in lines


async def test_activation_checks_the_stored_manifest(api: Api) -> None:
    # Versions written by other components are checked again on activation (PS7 step 3),
    # from the one read that also finds the version.
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    set_id = (await create_set(api, zone))["id"]
    other_zone = (await api.zone())["id"]
    foreign = (await create_policy(api, other_zone))["version_id"]
    own = policy["version_id"]
    cases = {
        "empty_manifest": [],
        "duplicate_entries": [own, own],
        "missing_versions": [own, "pv-never-written"],
        "foreign_zone": [own, foreign],
    }
    for number, (reason, ids) in enumerate(cases.items(), start=100):
        version_id = f"psv-{reason}-{set_id[-8:]}"
        manifest = json.dumps([{"policy_version_id": i} for i in ids])
        await sql(
            api,
            "INSERT INTO policy_set_versions (id, policy_set_id, version, manifest_json,"
            " manifest_sha256, schema_version, created_by)"
            " VALUES (:id, :s, :n, CAST(:m AS jsonb), 'x', '2026-05-20', 'test')",
            id=version_id,
            s=set_id,
            n=number,
            m=manifest,
        )
        response = await api.post(
            f"/v1/zones/{zone}/policy-sets/{set_id}/activate", json={"version_id": version_id}
        )
        body = assert_envelope(response, 422, "invalid_policy_contract")
        assert body["details"]["reason"] == reason, body
    assert await invalidations(api, set_id) == []
    active = await sql(
        api,
        "SELECT active_version_id FROM policy_set_bindings"
        " WHERE zone_id = :z AND active_version_id IS NOT NULL",
        z=zone,
    )
    assert active == []


async def test_a_version_gone_after_the_check_stops_the_activation(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # policy_versions rows are immutable; a replica-role session (no triggers) stands in for
    # whatever could still remove one between the check and the transaction.
    zone = (await api.zone())["id"]
    first, second = await create_policy(api, zone), await create_policy(api, zone)
    current = await create_set(api, zone)
    kept = await set_version(api, zone, current["id"], first["version_id"])
    await activate(api, zone, current["id"], kept["version_id"])
    target = await create_set(api, zone)
    version = await set_version(api, zone, target["id"], first["version_id"], second["version_id"])
    real_verify = endpoints.verify_locally

    async def verify_then_remove(*args: Any) -> Any:
        result = await real_verify(*args)
        async with api.runtime.engine.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                text("DELETE FROM policy_versions WHERE id = :id"), {"id": second["version_id"]}
            )
        return result

    monkeypatch.setattr(endpoints, "verify_locally", verify_then_remove)
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets/{target['id']}/activate",
        json={"version_id": version["version_id"]},
    )
    assert_envelope(response, 409, "referenced_policy_version_missing")
    # Rolled back as a whole: the zone's active set is still the first one.
    active = await sql(
        api,
        "SELECT policy_set_id FROM policy_set_bindings"
        " WHERE zone_id = :z AND active_version_id IS NOT NULL",
        z=zone,
    )
    assert [row.policy_set_id for row in active] == [current["id"]]
    assert len(await invalidations(api, target["id"])) == 0
