"""PS1–PS6, PS10: sets, manifest versions, the contract check and deletion (15–18, 28)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.conftest import Api, assert_envelope
from tests.integration.policies.support import (
    activate,
    create_policy,
    create_set,
    doc,
    invalidations,
    set_version,
    sql,
    unique,
)


async def test_create_get_and_list(api: Api) -> None:
    zone = (await api.zone())["id"]
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets", json={"name": "main", "description": "Main"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["active_version_id"] is None
    assert created["zone_id"] == zone
    assert created["description"] == "Main"
    assert list(created)[-1] == "active_version_id"
    assert (await api.get(f"/v1/zones/{zone}/policy-sets/{created['id']}")).json() == created
    listed = (await api.get(f"/v1/zones/{zone}/policy-sets")).json()
    assert listed == {"items": [created], "next_cursor": None}
    binding = await sql(
        api,
        "SELECT active_version_id FROM policy_set_bindings WHERE policy_set_id = :s",
        s=created["id"],
    )
    assert [b.active_version_id for b in binding] == [None]


async def test_name_conflict_unknown_zone_and_bodies(api: Api) -> None:
    zone = (await api.zone())["id"]
    await create_set(api, zone, "dup")
    conflict = await api.post(f"/v1/zones/{zone}/policy-sets", json={"name": "dup"})
    assert_envelope(conflict, 409, "policy_set_name_conflict")
    missing = await api.post("/v1/zones/nope/policy-sets", json={"name": "x"})
    assert_envelope(missing, 404, "zone_not_found")
    for body in ({}, {"name": ""}, {"name": 3}, {"name": "x", "description": None},
                 {"name": "x", "description": 5}, {"name": "n" * 201}):  # fmt: skip
        response = await api.post(f"/v1/zones/{zone}/policy-sets", json=body)
        assert_envelope(response, 400, "invalid_body")
    assert_envelope(
        await api.get(f"/v1/zones/{zone}/policy-sets/nope"), 404, "policy_set_not_found"
    )


async def test_versions_and_manifest_hash(api: Api) -> None:
    zone = (await api.zone())["id"]
    a = await create_policy(api, zone, doc(app_ids={"a": "b"}))
    b = await create_policy(api, zone, doc(grants={}))
    policy_set = await create_set(api, zone)
    first = await set_version(api, zone, policy_set["id"], a["version_id"])
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/versions",
        json={"manifest": [
            {"policy_version_id": b["version_id"], "extra": "dropped"},
            {"policy_version_id": a["version_id"]},
        ]},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    second = response.json()
    assert (first["version"], second["version"]) == (1, 2)
    assert list(second) == [
        "version_id", "id", "policy_set_id", "version", "manifest_sha256", "schema_version",
        "created_at",
    ]  # fmt: skip
    manifest = [{"policy_version_id": b["version_id"]}, {"policy_version_id": a["version_id"]}]
    compact = json.dumps(manifest, separators=(",", ":"), ensure_ascii=False)
    assert second["manifest_sha256"] == hashlib.sha256(compact.encode()).hexdigest()
    assert second["schema_version"] == "2026-05-20"

    base = f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/versions"
    listed = (await api.get(base)).json()
    assert [v["id"] for v in listed["items"]] == [second["id"], first["id"]]
    assert "manifest_json" not in listed["items"][0]
    detail = (await api.get(f"{base}/{second['id']}")).json()
    assert detail["manifest_json"] == manifest
    assert detail["policies"] == [b["version_id"], a["version_id"]]
    assert detail["manifest_sha256"] == second["manifest_sha256"]
    assert_envelope(await api.get(f"{base}/nope"), 404, "policy_set_version_not_found")
    other_set = await create_set(api, zone)
    wrong_set = f"/v1/zones/{zone}/policy-sets/{other_set['id']}/versions/{second['id']}"
    assert_envelope(await api.get(wrong_set), 404, "policy_set_version_not_found")
    audit = await sql(
        api, "SELECT entity_type, entity_id, payload_json FROM admin_audit_events"
        " WHERE request_id = :r", r=response.headers["x-request-id"],
    )  # fmt: skip
    assert (audit[0].entity_type, audit[0].entity_id) == ("policy-sets", policy_set["id"])
    assert audit[0].payload_json["changed_fields"] == ["manifest"]


@pytest.mark.parametrize(
    "manifest",
    [[], None, {}, "pv", [{}], [{"policy_version_id": ""}], [{"policy_version_id": 5}],
     [{"policy_version_id": "bad id"}], [{"policy_version_id": "x"}] * 257],
)  # fmt: skip
async def test_malformed_manifests(api: Api, manifest: Any) -> None:
    zone = (await api.zone())["id"]
    policy_set = await create_set(api, zone)
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/versions", json={"manifest": manifest}
    )
    assert_envelope(response, 400, "invalid_body")


async def contract_error(api: Api, zone: str, set_id: str, ids: list[str]) -> dict[str, Any]:
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/versions",
        json={"manifest": [{"policy_version_id": i} for i in ids]},
    )
    return assert_envelope(response, 422, "invalid_policy_contract")


async def test_contract_check(api: Api) -> None:
    zone, other = (await api.zone())["id"], (await api.zone())["id"]
    policy_set = await create_set(api, zone)
    own = await create_policy(api, zone)
    foreign = await create_policy(api, other)
    set_id = policy_set["id"]
    body = await contract_error(api, zone, set_id, ["no-such-version"])
    assert body["details"]["reason"] == "missing_versions"
    body = await contract_error(api, zone, set_id, [own["version_id"], own["version_id"]])
    assert body["details"]["reason"] == "duplicate_entries"
    body = await contract_error(api, zone, set_id, [own["version_id"], foreign["version_id"]])
    assert body["details"]["reason"] == "foreign_zone"

    old = await stored_version(api, own["id"], doc(grants={}), "1900-01-01")
    body = await contract_error(api, zone, set_id, [old])
    assert body["details"]["reason"] == "unsupported_schema"
    assert "unsupported_schema_version:1900-01-01" in body["error_description"]
    body = await contract_error(api, zone, set_id, [own["version_id"], old])
    assert body["details"]["reason"] == "schema_mismatch"
    assert "does not match policy set schema" in body["error_description"]
    invalid = await stored_version(api, own["id"], "package caracal.authz\nallow := 1\n")
    body = await contract_error(api, zone, set_id, [invalid])
    assert body["details"]["reason"] == "invalid_document:must_be_data_document"
    assert invalid in body["error_description"]

    unknown_set = await api.post(
        f"/v1/zones/{zone}/policy-sets/nope/versions",
        json={"manifest": [{"policy_version_id": own["version_id"]}]},
    )
    assert_envelope(unknown_set, 404, "policy_set_not_found")
    versions = (await api.get(f"/v1/zones/{zone}/policy-sets/{set_id}/versions")).json()
    assert versions["items"] == []


async def stored_version(api: Api, policy_id: str, content: str, schema: str = "2026-05-20") -> str:
    """A policy version written straight to the table (what the API would refuse)."""
    version_id = unique("pv")
    await sql(
        api,
        "INSERT INTO policy_versions (id, policy_id, version, content, content_sha256,"
        " schema_version, created_by) SELECT :id, :p, COALESCE(MAX(version), 0) + 1, :c,"
        " :sha, :schema, 'test' FROM policy_versions WHERE policy_id = :p",
        id=version_id,
        p=policy_id,
        c=content,
        sha=hashlib.sha256(content.encode()).hexdigest(),
        schema=schema,
    )
    return version_id


async def test_conflicting_documents_fail_bundle_verification(api: Api) -> None:
    zone = (await api.zone())["id"]
    a = await create_policy(api, zone, doc(grants={"r": {"application": "a"}}))
    b = await create_policy(api, zone, doc(grants={"r": {"application": "b"}}))
    policy_set = await create_set(api, zone)
    response = await api.post(
        f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/versions",
        json={"manifest": [{"policy_version_id": a["version_id"]},
                           {"policy_version_id": b["version_id"]}]},
    )  # fmt: skip
    body = assert_envelope(response, 422, "invalid_policy_bundle")
    assert "multiple outputs" in body["details"]["message"]


async def test_concurrent_set_versions_never_share_a_number(api: Api) -> None:
    import asyncio

    zone = (await api.zone())["id"]
    policies = [await create_policy(api, zone, doc(grants={"n": n})) for n in range(8)]
    policy_set = await create_set(api, zone)
    responses = await asyncio.gather(
        *(
            api.post(
                f"/v1/zones/{zone}/policy-sets/{policy_set['id']}/versions",
                json={"manifest": [{"policy_version_id": p["version_id"]}]},
            )
            for p in policies
        )
    )
    assert [r.status_code for r in responses] == [201] * 8
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 9))


async def test_delete_active_set(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    policy_set = await create_set(api, zone, "to-delete")
    version = await set_version(api, zone, policy_set["id"], policy["version_id"])
    await activate(api, zone, policy_set["id"], version["id"])
    base = f"/v1/zones/{zone}/policy-sets/{policy_set['id']}"
    deleted = await api.delete(base)
    assert deleted.status_code == 204
    rows = await invalidations(api, policy_set["id"])
    assert len(rows) == 2
    assert rows[-1].payload_json == {
        "zone_id": zone, "policy_set_id": policy_set["id"], "policy_set_version_id": None,
    }  # fmt: skip
    binding = await sql(
        api, "SELECT active_version_id FROM policy_set_bindings WHERE policy_set_id = :s",
        s=policy_set["id"],
    )  # fmt: skip
    assert [b.active_version_id for b in binding] == [None]
    assert_envelope(await api.get(base), 404, "policy_set_not_found")
    assert_envelope(await api.delete(base), 404, "policy_set_not_found")
    assert_envelope(await api.get(base + "/activation-status"), 404, "policy_set_binding_not_found")
    again = await api.post(base + "/activate", json={"version_id": version["id"]})
    assert_envelope(again, 404, "version_not_found")
    # versions of archived sets stay readable (PS6), the name is free again
    assert (await api.get(base + f"/versions/{version['id']}")).status_code == 200
    assert_envelope(await api.get(base + "/versions"), 404, "policy_set_not_found")
    await create_set(api, zone, "to-delete")


async def test_delete_inactive_set_writes_no_event(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy_set = await create_set(api, zone)
    assert (await api.delete(f"/v1/zones/{zone}/policy-sets/{policy_set['id']}")).status_code == 204
    assert await invalidations(api, policy_set["id"]) == []
