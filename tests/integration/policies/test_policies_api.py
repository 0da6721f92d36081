"""PO2–PO6: policies and their immutable versions (checklist 8–14)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from tests.conftest import Api, assert_envelope
from tests.integration.policies.support import (
    HEADER,
    create_policy,
    create_set,
    doc,
    set_version,
    sql,
    unique,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def test_create_and_read(api: Api) -> None:
    zone = (await api.zone())["id"]
    content = HEADER + '# zürich-ß 🚀\napp_ids := {"zürich-ß": "🚀"}\n'
    response = await api.post(
        f"/v1/zones/{zone}/policies",
        json={"name": "grants", "description": "Zone grants", "content": content},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert list(created) == ["id", "version_id", "zone_id", "name", "description", "version"]
    assert created["version_id"] == created["version"]["id"]
    assert created["zone_id"] == zone
    assert created["description"] == "Zone grants"
    assert created["version"]["version"] == 1
    assert created["version"]["policy_id"] == created["id"]
    assert created["version"]["content_sha256"] == sha(content)
    assert created["version"]["schema_version"] == "2026-05-20"

    detail = (await api.get(f"/v1/zones/{zone}/policies/{created['id']}")).json()
    assert detail["name"] == "grants"
    assert [v["version"] for v in detail["versions"]] == [1]
    version = detail["versions"][0]
    assert version["content"] == content
    assert version["archived_at"] is None
    assert set(version) == {
        "id", "policy_id", "version", "content", "content_sha256", "schema_version",
        "created_by", "created_via_operator", "created_at", "archived_at",
    }  # fmt: skip
    listed = (await api.get(f"/v1/zones/{zone}/policies")).json()
    assert [p["id"] for p in listed["items"]] == [created["id"]]
    assert "versions" not in listed["items"][0]
    assert listed["next_cursor"] is None


async def test_create_is_audited(api: Api) -> None:
    zone = (await api.zone())["id"]
    response = await api.post(
        f"/v1/zones/{zone}/policies", json={"name": unique("p"), "content": doc(grants={})}
    )
    rows = await sql(
        api,
        "SELECT entity_type, entity_id, zone_id, payload_json FROM admin_audit_events"
        " WHERE request_id = :r",
        r=response.headers["x-request-id"],
    )
    assert [(r.entity_type, r.entity_id, r.zone_id) for r in rows] == [
        ("policies", response.json()["id"], zone)
    ]
    assert rows[0].payload_json["change_kind"] == "create"


async def test_versions_append(api: Api) -> None:
    zone = (await api.zone())["id"]
    first = doc(grants={"r": 1})
    policy = await create_policy(api, zone, first)
    path = f"/v1/zones/{zone}/policies/{policy['id']}/versions"
    second = await api.post(path, json={"content": doc(grants={"r": 2})})
    assert second.status_code == 201, second.text
    body = second.json()
    assert list(body) == [
        "version_id", "id", "policy_id", "version", "content_sha256", "schema_version",
        "created_at",
    ]  # fmt: skip
    assert body["version"] == 2
    assert body["version_id"] == body["id"]
    third = (await api.post(path, json={"content": first})).json()
    assert third["version"] == 3
    assert third["content_sha256"] == policy["version"]["content_sha256"]
    assert len({policy["version_id"], body["id"], third["id"]}) == 3
    rows = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events WHERE request_id = :r",
        r=second.headers["x-request-id"],
    )
    assert (rows[0].entity_type, rows[0].entity_id) == ("policies", policy["id"])
    assert rows[0].payload_json["change_kind"] == "action"
    assert rows[0].payload_json["changed_fields"] == ["content"]

    rejected = await api.post(path, json={"content": HEADER + "allow := 1\n"})
    assert_envelope(rejected, 422, "invalid_rego")
    assert "valid" not in rejected.json()
    detail = (await api.get(f"/v1/zones/{zone}/policies/{policy['id']}")).json()
    assert [v["version"] for v in detail["versions"]] == [3, 2, 1]
    assert detail["versions"][2]["content"] == first
    assert detail["versions"][2]["id"] == policy["version_id"]
    assert detail["updated_at"] >= detail["created_at"]


async def test_concurrent_versions_never_share_a_number(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    path = f"/v1/zones/{zone}/policies/{policy['id']}/versions"
    responses = await asyncio.gather(
        *(api.post(path, json={"content": doc(grants={"n": n})}) for n in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20
    numbers = sorted(r.json()["version"] for r in responses)
    assert numbers == list(range(2, 22))
    detail = (await api.get(f"/v1/zones/{zone}/policies/{policy['id']}")).json()
    assert [v["version"] for v in detail["versions"]] == list(range(21, 0, -1))


async def test_unknown_or_archived_policy_and_zone(api: Api) -> None:
    zone = (await api.zone())["id"]
    unknown = await api.post(
        f"/v1/zones/{zone}/policies/nope/versions", json={"content": doc(grants={})}
    )
    assert_envelope(unknown, 404, "policy_not_found")
    policy = await create_policy(api, zone)
    assert (await api.delete(f"/v1/zones/{zone}/policies/{policy['id']}")).status_code == 204
    archived = await api.post(
        f"/v1/zones/{zone}/policies/{policy['id']}/versions", json={"content": doc(grants={})}
    )
    assert_envelope(archived, 404, "policy_not_found")
    no_zone = await api.post(
        "/v1/zones/no-such-zone/policies", json={"name": "x", "content": doc(grants={})}
    )
    assert_envelope(no_zone, 404, "zone_not_found")
    no_zone_bad_body = await api.post("/v1/zones/no-such-zone/policies", json={})
    assert_envelope(no_zone_bad_body, 404, "zone_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"content": "x"},
        {"name": "p"},
        {"name": "", "content": "x"},
        {"name": 5, "content": "x"},
        {"name": "p", "content": ["x"]},
        {"name": "p", "content": {"a": 1}},
        {"name": "p", "content": ""},
        {"name": "p", "content": "x", "description": None},
        {"name": "p", "content": "x", "description": "d" * 2001},
        {"name": "n" * 100_000, "content": "x"},
    ],
)
async def test_malformed_create_bodies(api: Api, body: dict[str, Any]) -> None:
    zone = (await api.zone())["id"]
    response = await api.post(f"/v1/zones/{zone}/policies", json=body)
    assert_envelope(response, 400, "invalid_body")
    assert response.json()["details"]["issues"]
    assert (await api.get(f"/v1/zones/{zone}/policies")).json()["items"] == []


async def test_rejected_content_leaves_no_policy(api: Api) -> None:
    zone = (await api.zone())["id"]
    response = await api.post(
        f"/v1/zones/{zone}/policies", json={"name": "p", "content": HEADER + "allow := 1\n"}
    )
    body = assert_envelope(response, 422, "invalid_rego")
    assert body["error_description"] == "data_document_rule_not_allowed:allow"
    assert (await api.get(f"/v1/zones/{zone}/policies")).json()["items"] == []


async def test_name_conflict_and_reuse(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone, name="shared")
    again = await api.post(
        f"/v1/zones/{zone}/policies", json={"name": "shared", "content": doc(grants={})}
    )
    assert_envelope(again, 409, "policy_name_conflict")
    assert (await api.delete(f"/v1/zones/{zone}/policies/{policy['id']}")).status_code == 204
    reused = await create_policy(api, zone, name="shared")
    assert reused["id"] != policy["id"]
    # names are not trimmed: a padded name is another name
    await create_policy(api, zone, name=" shared ")


async def test_reserved_policy_names(api: Api) -> None:
    zone = (await api.zone())["id"]
    token = (await api.mint("write"))["token"]
    response = await api.post(
        f"/v1/zones/{zone}/policies",
        json={"name": "caracal.sys/policy", "content": doc(grants={})},
        token=token,
    )
    assert_envelope(response, 409, "reserved_namespace")
    await create_policy(api, zone, name="caracal.sys/policy")  # the bootstrap token may


async def test_zone_isolation_and_delete(api: Api) -> None:
    zone, other = (await api.zone())["id"], (await api.zone())["id"]
    policy = await create_policy(api, zone)
    path = f"/v1/zones/{other}/policies/{policy['id']}"
    assert_envelope(await api.get(path), 404, "policy_not_found")
    assert_envelope(await api.delete(path), 404, "policy_not_found")
    assert (await api.get(f"/v1/zones/{other}/policies")).json()["items"] == []
    own = f"/v1/zones/{zone}/policies/{policy['id']}"
    deleted = await api.delete(own)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_envelope(await api.get(own), 404, "policy_not_found")
    assert_envelope(await api.delete(own), 404, "policy_not_found")
    add = await api.post(own + "/versions", json={"content": doc(grants={})})
    assert_envelope(add, 404, "policy_not_found")
    assert (await api.get(f"/v1/zones/{zone}/policies")).json()["items"] == []


async def test_archived_policy_versions_stay_usable_in_manifests(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    await api.delete(f"/v1/zones/{zone}/policies/{policy['id']}")
    policy_set = await create_set(api, zone)
    version = await set_version(api, zone, policy_set["id"], policy["version_id"])
    assert version["version"] == 1


async def test_versions_are_immutable_in_the_database(api: Api) -> None:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone)
    policy_set = await create_set(api, zone)
    version = await set_version(api, zone, policy_set["id"], policy["version_id"])
    with pytest.raises(DBAPIError, match="policy_versions rows are immutable"):
        await sql(
            api, "UPDATE policy_versions SET content = 'x' WHERE id = :id", id=policy["version_id"]
        )
    with pytest.raises(DBAPIError, match="policy_versions rows are immutable"):
        await sql(api, "DELETE FROM policy_set_versions WHERE id = :id", id=version["id"])
    with pytest.raises(DBAPIError, match="policy_versions rows are immutable"):
        await sql(api, "DELETE FROM policy_versions WHERE id = :id", id=policy["version_id"])


async def test_list_pagination(api: Api) -> None:
    zone = (await api.zone())["id"]
    ids = [(await create_policy(api, zone))["id"] for _ in range(3)]
    first = (await api.get(f"/v1/zones/{zone}/policies?limit=2")).json()
    assert [p["id"] for p in first["items"]] == ids[::-1][:2]
    second = (
        await api.get(f"/v1/zones/{zone}/policies?limit=2&cursor={first['next_cursor']}")
    ).json()
    assert [p["id"] for p in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    assert_envelope(await api.get(f"/v1/zones/{zone}/policies?limit=0"), 400, "invalid_query")
