"""Admin-audit records: atomic with the change, failure records, fields (foundation §13)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from caracal_api.audit import records
from tests.conftest import Api, assert_envelope
from tests.integration.foundation.support import (
    bootstrap_id,
    fetch,
    fetch_one,
    open_api,
    records_of,
    registered,
    ts_text,
    unique,
    wait_records,
)

APPS = "/v1/zones/{zoneId}/applications"
HAS_APPS = registered("POST", APPS)
HAS_E4 = registered("GET", "/v1/zones/{zoneId}/admin-audit")
HAS_PROVIDERS = registered("PATCH", "/v1/zones/{zoneId}/providers/{id}")
HAS_PROVIDER_TEST = registered("POST", "/v1/zones/{zoneId}/providers/{id}/test")
needs_apps = pytest.mark.skipif(not HAS_APPS, reason="applications routes not served")
needs_e4 = pytest.mark.skipif(not HAS_E4, reason="zone admin-audit list (E4) not served")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the whole module."""
    async with open_api(database_dsn, redis_url) as app:
        yield app


def rid(response: Any) -> str:
    return str(response.headers["x-request-id"])


async def one_record(api: Api, response: Any) -> Any:
    rows = await wait_records(api, rid(response))
    assert len(rows) == 1, rows
    return rows[0]


# --- item 43 ---------------------------------------------------------------------------------


# foundation §18 item 43
async def test_every_successful_mutation_has_its_record(api: Api) -> None:
    created = await api.post("/v1/zones", json={"name": unique("audited")})
    zone = created.json()
    record = await one_record(api, created)
    assert (record.status_code, record.zone_id, record.method) == (201, zone["id"], "POST")
    patched = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "renamed"})
    record = await one_record(api, patched)
    assert (record.status_code, record.zone_id, record.method) == (200, zone["id"], "PATCH")
    minted = await api.post(
        "/v1/admin-tokens", json={"name": "audited", "scope": "global", "capability": "read"}
    )
    record = await one_record(api, minted)
    assert (record.status_code, record.zone_id) == (201, None)
    revoked = await api.delete(f"/v1/admin-tokens/{minted.json()['id']}")
    record = await one_record(api, revoked)
    assert (record.status_code, record.zone_id, record.method) == (204, None, "DELETE")
    deleted = await api.delete(f"/v1/zones/{zone['id']}")
    record = await one_record(api, deleted)
    assert (record.status_code, record.zone_id, record.method) == (204, zone["id"], "DELETE")


# foundation §18 item 43
async def test_failed_audit_insert_rolls_the_mutation_back(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = await api.zone(unique("atomic"))
    token = await api.mint("read", zone=zone["id"], name="atomic zone token")
    real_insert = records.insert

    async def failing_insert(db: Any, record: dict[str, Any]) -> None:
        if record["status_code"] < 400:
            raise RuntimeError("admin-audit store refused the row")
        await real_insert(db, record)

    monkeypatch.setattr(records, "insert", failing_insert)

    name = unique("never committed")
    response = await api.post("/v1/zones", json={"name": name})
    assert_envelope(response, 500, "internal_error")
    assert await fetch(api, "SELECT id FROM zones WHERE name = :n", n=name) == []

    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "not applied"})
    assert_envelope(response, 500, "internal_error")
    stored = await fetch_one(api, "SELECT name FROM zones WHERE id = :id", id=zone["id"])
    assert stored is not None
    assert stored.name == zone["name"]

    response = await api.delete(f"/v1/zones/{zone['id']}")
    assert_envelope(response, 500, "internal_error")
    live = await fetch_one(api, "SELECT archived_at FROM zones WHERE id = :id", id=zone["id"])
    assert live is not None
    assert live.archived_at is None
    token_row = await fetch_one(
        api, "SELECT revoked_at FROM admin_tokens WHERE id = :id", id=token["id"]
    )
    assert token_row is not None
    assert token_row.revoked_at is None

    # The failure itself is still recorded (after the response, own transaction).
    rows = await wait_records(api, rid(response))
    assert [r.status_code for r in rows] == [500]
    monkeypatch.undo()
    assert (await api.get(f"/v1/zones/{zone['id']}", token=token["token"])).status_code == 200


# --- item 44 ---------------------------------------------------------------------------------


async def _assert_failure_record(api: Api, response: Any, zone_id: str, status: int) -> Any:
    record = await one_record(api, response)
    assert record.status_code == status
    assert record.zone_id == zone_id
    assert record.actor_id == await bootstrap_id(api)
    # Failure records carry no change summary.
    assert record.payload_json == {"rls_mode": "control_plane_wildcard", "rls_zone_guc": "*"}
    return record


async def _assert_not_in_default_e4(api: Api, zone_id: str, request_id: str) -> None:
    listed = await api.get(f"/v1/zones/{zone_id}/admin-audit")
    assert listed.status_code == 200, listed.text
    assert request_id not in {item["request_id"] for item in listed.json()["items"]}
    failures = await api.get(f"/v1/zones/{zone_id}/admin-audit", params={"outcome": "failure"})
    assert request_id in {item["request_id"] for item in failures.json()["items"]}


# foundation §18 item 44
@needs_apps
async def test_rejected_application_write_is_a_failure_record(api: Api) -> None:
    zone = await api.zone(unique("rejected"))
    response = await api.post(f"/v1/zones/{zone['id']}/applications", json={"name": ""})
    assert_envelope(response, 400, "invalid_application")
    await _assert_failure_record(api, response, zone["id"], 400)
    assert await fetch(api, "SELECT id FROM applications WHERE zone_id = :z", z=zone["id"]) == []
    read = await api.get(f"/v1/zones/{zone['id']}/applications")
    assert read.status_code == 200
    await asyncio.sleep(0.3)
    assert await records_of(api, rid(read)) == []
    if HAS_E4:
        await _assert_not_in_default_e4(api, zone["id"], rid(response))


# foundation §18 item 44 (the same rules on a zone route)
async def test_rejected_zone_write_is_a_failure_record(api: Api) -> None:
    zone = await api.zone(unique("rejected"))
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": ""})
    assert_envelope(response, 400, "invalid_zone")
    record = await _assert_failure_record(api, response, zone["id"], 400)
    assert record.action == f"PATCH /v1/zones/{zone['id']}"
    success = await fetch(
        api,
        "SELECT id FROM admin_audit_events WHERE zone_id = :z AND status_code < 400",
        z=zone["id"],
    )
    assert len(success) == 1  # only the create
    # Successful reads are never recorded; failed reads are.
    read = await api.get(f"/v1/zones/{zone['id']}")
    assert read.status_code == 200
    status = await api.get(f"/v1/zones/{zone['id']}/dcr-status?x=1")
    assert status.status_code == 200
    missing = await api.get("/v1/zones/no-such-zone")
    assert_envelope(missing, 404, "zone_not_found")
    missing_record = await one_record(api, missing)
    assert missing_record.status_code == 404
    assert missing_record.zone_id == "no-such-zone"
    assert await records_of(api, rid(read)) == []
    assert await records_of(api, rid(status)) == []
    if HAS_E4:
        await _assert_not_in_default_e4(api, zone["id"], rid(response))


# foundation §18 item 44 (E4's default listing hides failures)
@needs_e4
async def test_e4_default_lists_only_successes(api: Api) -> None:
    zone = await api.zone(unique("e4 outcome"))
    bad = await api.patch(f"/v1/zones/{zone['id']}", json={"slug": "NOT VALID"})
    assert_envelope(bad, 400, "invalid_zone")
    await one_record(api, bad)
    await _assert_not_in_default_e4(api, zone["id"], rid(bad))


# --- item 45 ---------------------------------------------------------------------------------


def _summary(record: Any) -> dict[str, Any]:
    payload = dict(record.payload_json or {})
    payload.pop("rls_mode", None)
    payload.pop("rls_zone_guc", None)
    return payload


# foundation §18 item 45
async def test_zone_records(api: Api) -> None:
    created = await api.post("/v1/zones", json={"name": unique("records"), "dcr_enabled": False})
    zone = created.json()
    record = await one_record(api, created)
    assert (record.entity_type, record.entity_id, record.zone_id) == (
        "zones",
        zone["id"],
        zone["id"],
    )
    assert record.action == "POST /v1/zones"
    assert record.path == "/v1/zones"
    # occurred_at is the transaction's timestamp: the zone's created_at.
    assert ts_text(record.occurred_at) == zone["created_at"]
    assert record.payload_json["rls_mode"] == "control_plane_wildcard"
    assert record.payload_json["rls_zone_guc"] == "*"
    assert _summary(record) == {"change_kind": "create", "changed_fields": ["dcr_enabled", "name"]}
    assert record.chain_seq is None or record.chain_seq >= 1

    patched = await api.patch(
        f"/v1/zones/{zone['id']}",
        json={"operator_governed": True, "name": "b", "slug": unique("s").replace(" ", "-")},
    )
    record = await one_record(api, patched)
    assert (record.entity_type, record.entity_id) == ("zones", zone["id"])
    assert _summary(record) == {
        "change_kind": "update",
        "changed_fields": ["name", "operator_governed", "slug"],
    }

    # A zone token's records say so in the compatibility keys.
    zone_token = await api.mint("write", zone=zone["id"], name="records zone token")
    patched = await api.patch(
        f"/v1/zones/{zone['id']}", json={"name": "c"}, token=zone_token["token"]
    )
    record = await one_record(api, patched)
    assert record.payload_json["rls_mode"] == "zone_scoped"
    assert record.payload_json["rls_zone_guc"] == zone["id"]
    assert (record.actor_id, record.actor_name, record.actor_scope) == (
        zone_token["id"],
        "records zone token",
        "zone",
    )

    deleted = await api.delete(f"/v1/zones/{zone['id']}")
    record = await one_record(api, deleted)
    assert (record.entity_type, record.entity_id, record.status_code) == ("zones", zone["id"], 204)
    assert _summary(record) == {"change_kind": "delete", "changed_fields": []}


# foundation §18 item 45 (admin-token records sit on the global chain, never the plaintext)
async def test_admin_token_records(api: Api) -> None:
    minted = await api.post(
        "/v1/admin-tokens", json={"name": "recorded", "scope": "global", "capability": "read"}
    )
    body = minted.json()
    record = await one_record(api, minted)
    assert (record.entity_type, record.entity_id, record.zone_id) == (
        "admin-tokens",
        body["id"],
        None,
    )
    assert _summary(record) == {
        "change_kind": "create",
        "changed_fields": ["capability", "name", "scope"],
    }
    assert body["token"] not in str(record.payload_json)
    revoked = await api.delete(f"/v1/admin-tokens/{body['id']}")
    record = await one_record(api, revoked)
    assert (record.entity_type, record.entity_id) == ("admin-tokens", body["id"])
    assert _summary(record)["change_kind"] == "delete"


# foundation §18 item 45
@needs_apps
async def test_application_records(api: Api) -> None:
    zone = await api.zone(unique("app records"), dcr_enabled=True)
    base = f"/v1/zones/{zone['id']}/applications"
    created = await api.post(base, json={"name": "recorded", "registration_method": "managed"})
    assert created.status_code == 201, created.text
    app = created.json()
    record = await one_record(api, created)
    assert (record.entity_type, record.entity_id, record.zone_id) == (
        "applications",
        app["id"],
        zone["id"],
    )
    assert _summary(record) == {
        "change_kind": "create",
        "changed_fields": ["name", "registration_method"],
    }
    assert app["client_secret"] not in str(record.payload_json)

    rotated = await api.post(f"{base}/{app['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    record = await one_record(api, rotated)
    assert (record.entity_type, record.entity_id) == ("applications", app["id"])
    assert _summary(record) == {
        "change_kind": "secret_rotation",
        "changed_fields": [],
        "secret_rotated": True,
    }

    secret = "s" * 40
    patched = await api.patch(f"{base}/{app['id']}", json={"client_secret": secret, "name": "n2"})
    assert patched.status_code == 200, patched.text
    record = await one_record(api, patched)
    assert _summary(record) == {
        "change_kind": "secret_rotation",
        "changed_fields": ["name"],
        "secret_rotated": True,
    }
    assert secret not in str(record.payload_json)

    dcr = await api.post(f"{base}/dcr", json={"name": "dcr client"})
    assert dcr.status_code == 201, dcr.text
    record = await one_record(api, dcr)
    assert (record.entity_type, record.entity_id) == ("applications", "dcr")
    assert _summary(record)["change_kind"] == "create"

    deleted = await api.delete(f"{base}/{app['id']}")
    assert deleted.status_code == 204
    record = await one_record(api, deleted)
    assert (record.entity_type, record.entity_id) == ("applications", app["id"])
    assert _summary(record) == {"change_kind": "delete", "changed_fields": []}


# foundation §18 item 45 (nested PATCH fields, `/test` as an action)
@pytest.mark.skipif(not HAS_PROVIDERS, reason="provider routes not served")
async def test_provider_records(api: Api) -> None:
    zone = await api.zone(unique("provider records"))
    base = f"/v1/zones/{zone['id']}/providers"
    created = await api.post(
        base,
        json={
            "name": "recorded provider",
            "kind": "oauth2_client_credentials",
            "config_json": {
                "token_endpoint": "https://127.0.0.1:9/token",
                "client_id": "client",
                "client_secret": "provider-secret-value",
            },
        },
    )
    assert created.status_code == 201, created.text
    provider = created.json()
    record = await one_record(api, created)
    assert _summary(record)["secret_rotated"] is True
    assert "provider-secret-value" not in str(record.payload_json)
    assert "config_json.client_secret" not in _summary(record)["changed_fields"]

    patched = await api.patch(
        f"{base}/{provider['id']}",
        json={
            "config_json": {
                "token_endpoint": "https://127.0.0.1:9/token",
                "client_id": "client-2",
                "token_params": {"b": "2", "a": "1"},
            },
            "name": "renamed provider",
        },
    )
    assert patched.status_code == 200, patched.text
    record = await one_record(api, patched)
    assert _summary(record) == {
        "change_kind": "update",
        "changed_fields": [
            "config_json.client_id",
            "config_json.token_endpoint",
            "config_json.token_params.a",
            "config_json.token_params.b",
            "name",
        ],
    }
    if HAS_PROVIDER_TEST:
        tested = await api.post(f"{base}/{provider['id']}/test")
        assert tested.status_code == 200, tested.text
        record = await one_record(api, tested)
        assert (record.entity_type, record.entity_id) == ("providers", provider["id"])
        assert _summary(record) == {"change_kind": "action", "changed_fields": []}
