"""Admin-audit reads E4 (zone chain) and E7 (global chain) (events.md §9, §10 items 30–35, 48)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from caracalai_admin import AdminClient

from caracal_api.zone_events.shapes import ADMIN_AUDIT_EXPORT_FIELDS
from tests.conftest import BOOTSTRAP_TOKEN, Api, assert_envelope
from tests.integration.foundation.support import (
    LoopTransport,
    open_api,
    registered,
    wait_records,
)
from tests.integration.zone_events.zone_events_support import new_id

ROW_KEYS = [
    "id", "request_id", "actor_id", "actor_name", "actor_scope", "action", "method", "path",
    "entity_type", "entity_id", "status_code", "payload_json", "occurred_at", "chain_seq",
    "signed",
]  # fmt: skip
SECRET = "S3cr3t-" + "x" * 40


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with open_api(database_dsn, redis_url) as app:
        yield app


def admin_audit(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/admin-audit"


async def listing(api: Api, path: str, **params: str) -> list[dict[str, Any]]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def settle(api: Api, response: httpx.Response, count: int = 1) -> None:
    """Failure records are written after the response: wait until they exist."""
    await wait_records(api, response.headers["x-request-id"], count)


# --- items 30, 31 ----------------------------------------------------------------------------


# events §10 items 30 and 31
async def test_zone_and_application_records(api: Api) -> None:
    created = await api.post("/v1/zones", json={"name": new_id("audited zone")})
    zone = created.json()["id"]
    items = await listing(api, admin_audit(zone))
    (zone_record,) = [i for i in items if i["request_id"] == created.headers["x-request-id"]]
    assert list(zone_record) == ROW_KEYS
    assert (zone_record["method"], zone_record["entity_id"]) == ("POST", zone)
    assert zone_record["entity_type"] == "zones"

    app = await api.post(
        f"/v1/zones/{zone}/applications",
        json={"name": "Audited App", "registration_method": "managed"},
    )
    assert app.status_code == 201
    app_id = app.json()["id"]
    records = [
        i for i in await listing(api, admin_audit(zone), entity_type="applications")
        if i["request_id"] == app.headers["x-request-id"]
    ]  # fmt: skip
    assert len(records) == 1
    record = records[0]
    assert (record["entity_type"], record["entity_id"], record["status_code"]) == (
        "applications", app_id, 201,
    )  # fmt: skip
    assert record["path"] == f"/v1/zones/{zone}/applications"
    assert record["payload_json"]["change_kind"] == "create"
    assert "name" in record["payload_json"]["changed_fields"]
    assert app.json()["client_secret"] not in json.dumps(record)
    assert isinstance(record["chain_seq"], int | None)
    assert isinstance(record["signed"], bool)

    patched = await api.patch(
        f"/v1/zones/{zone}/applications/{app_id}", json={"client_secret": SECRET}
    )
    assert patched.status_code == 200, patched.text
    assert SECRET not in patched.text
    (rotation,) = [
        i for i in await listing(api, admin_audit(zone), method="PATCH")
        if i["request_id"] == patched.headers["x-request-id"]
    ]  # fmt: skip
    summary = rotation["payload_json"]
    assert summary["change_kind"] == "secret_rotation"
    assert summary["secret_rotated"] is True
    assert "client_secret" not in summary["changed_fields"]
    assert SECRET not in json.dumps(rotation)


# --- items 32–35 -----------------------------------------------------------------------------


# events §10 items 32, 33, 34, 35
async def test_outcomes_filters_fields_csv_paging_and_errors(api: Api) -> None:
    zone = str((await api.zone())["id"])
    apps = []
    for i in range(3):
        response = await api.post(
            f"/v1/zones/{zone}/applications",
            json={"name": f"Paged {i}", "registration_method": "managed"},
        )
        apps.append(response.json()["id"])
    deleted = await api.delete(f"/v1/zones/{zone}/applications/{apps[0]}")
    assert deleted.status_code == 204
    rejected = await api.post(f"/v1/zones/{zone}/applications", json={"name": ""})
    assert rejected.status_code == 400
    read = await api.get(f"/v1/zones/{zone}/applications")
    assert read.status_code == 200
    await settle(api, rejected)

    default = await listing(api, admin_audit(zone))
    request_ids = {i["request_id"] for i in default}
    assert rejected.headers["x-request-id"] not in request_ids
    assert read.headers["x-request-id"] not in request_ids
    assert all(i["status_code"] < 400 for i in default)
    failures = await listing(api, admin_audit(zone), outcome="failure")
    assert [i["request_id"] for i in failures] == [rejected.headers["x-request-id"]]
    everything = await listing(api, admin_audit(zone), outcome="all")
    assert len(everything) == len(default) + 1

    (delete_record,) = await listing(api, admin_audit(zone), method="DELETE")
    assert (delete_record["entity_id"], delete_record["status_code"]) == (apps[0], 204)
    one = await listing(api, admin_audit(zone), entity_type="applications", entity_id=apps[1])
    assert [i["entity_id"] for i in one] == [apps[1]]
    projected = await listing(api, admin_audit(zone), fields="id,method,entity_type")
    assert all(list(i) == ["id", "method", "entity_type"] for i in projected)
    exported = await api.get(
        admin_audit(zone), params={"fields": "id,method,entity_type", "format": "csv"}
    )
    assert exported.headers["content-disposition"] == (
        f'attachment; filename="admin-audit-{zone}.csv"'
    )
    lines = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert lines[0] == ["id", "method", "entity_type"]
    assert len(lines) - 1 >= 2
    full_csv = await api.get(admin_audit(zone), params={"format": "csv"})
    assert full_csv.text.split("\r\n", 1)[0] == ",".join(ADMIN_AUDIT_EXPORT_FIELDS)

    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = (await api.get(admin_audit(zone), params=params)).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) >= 3
    assert len(seen) == len(set(seen))
    assert seen == [i["id"] for i in default]

    for bad in ({"method": "GET"}, {"since": "last week"}, {"limit": "1001"},
                {"format": "xml"}, {"outcome": "maybe"}, {"entity_type": "e" * 65}):  # fmt: skip
        assert_envelope(await api.get(admin_audit(zone), params=bad), 400, "invalid_query")
    for bad_fields in ("id,secret_sauce", "payload_json", ",,"):
        response = await api.get(admin_audit(zone), params={"fields": bad_fields})
        assert_envelope(response, 400, "invalid_fields")
    assert_envelope(await api.get(admin_audit(zone) + "?cursor=%%%"), 400, "invalid_cursor")


async def test_admin_client_lists_zone_records(api: Api) -> None:
    zone = str((await api.zone())["id"])
    client = AdminClient(
        api_url="http://caracal.test",
        admin_token=BOOTSTRAP_TOKEN,
        http_client=httpx.Client(transport=LoopTransport(api, asyncio.get_running_loop())),
        retries=0,
    )
    items = await asyncio.to_thread(client.admin_audit.list, zone, {"method": "POST"})
    assert [i["entity_id"] for i in items] == [zone]


# --- item 48 ---------------------------------------------------------------------------------


# events §10 item 48
async def test_global_chain_list(api: Api) -> None:
    minted = await api.post(
        "/v1/admin-tokens", json={"name": new_id("audited"), "scope": "global",
                                  "capability": "read"},
    )  # fmt: skip
    assert minted.status_code == 201, minted.text
    token = minted.json()
    revoked = await api.delete(f"/v1/admin-tokens/{token['id']}")
    assert revoked.status_code == 204
    zone_created = await api.post("/v1/zones", json={"name": new_id("not global")})
    validate = None
    if registered("POST", "/v1/policies/validate"):
        validate = await api.post("/v1/policies/validate", json={"content": "package caracal\n"})

    items = await listing(api, "/v1/admin-audit", entity_type="admin-tokens",
                          entity_id=token["id"])  # fmt: skip
    assert [(i["status_code"], i["payload_json"]["change_kind"]) for i in items] == [
        (204, "delete"), (201, "create"),
    ]  # fmt: skip
    assert token["token"] not in json.dumps(items)
    everything = await listing(api, "/v1/admin-audit", outcome="all", limit="1000")
    request_ids = {i["request_id"] for i in everything}
    assert zone_created.headers["x-request-id"] not in request_ids
    assert minted.headers["x-request-id"] in request_ids
    if validate is not None:
        assert validate.headers["x-request-id"] in request_ids
    async with api.runtime.engine.connect() as conn:
        from sqlalchemy import text

        zoned = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM admin_audit_events WHERE zone_id IS NOT NULL"
                    " AND id = ANY(:ids)"
                ),
                {"ids": [i["id"] for i in everything]},
            )
        ).scalar()
    assert zoned == 0

    anonymous_miss = await api.get("/v1/nowhere", token="")
    await settle(api, anonymous_miss)
    failures = await listing(api, "/v1/admin-audit", outcome="failure")
    assert anonymous_miss.headers["x-request-id"] in {i["request_id"] for i in failures}

    exported = await api.get("/v1/admin-audit", params={"format": "csv", "fields": "id,method"})
    assert (
        exported.headers["content-disposition"] == 'attachment; filename="admin-audit-global.csv"'
    )
    assert exported.text.startswith("id,method\r\n")
    paged = (await api.get("/v1/admin-audit", params={"limit": "1"})).json()
    assert len(paged["items"]) == 1
    assert paged["next_cursor"] is not None
    assert_envelope(await api.get("/v1/admin-audit", params={"method": "GET"}), 400,
                    "invalid_query")  # fmt: skip
    assert_envelope(await api.get("/v1/admin-audit", params={"fields": "payload_json"}), 400,
                    "invalid_fields")  # fmt: skip

    reader = await api.mint("read")
    approver = await api.mint("approve")
    for allowed in (reader, approver):
        assert (await api.get("/v1/admin-audit", token=allowed["token"])).status_code == 200
    zone = str((await api.zone())["id"])
    zone_token = await api.mint("read", zone=zone)
    assert_envelope(await api.get("/v1/admin-audit", token=zone_token["token"]), 403,
                    "admin_token_zone_mismatch")  # fmt: skip
    assert_envelope(await api.get("/v1/admin-audit", token=""), 401, "invalid_admin_token")
