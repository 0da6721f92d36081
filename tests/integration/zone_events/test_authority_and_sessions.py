"""Authority records E5, sessions E6, and what every zone-event route shares
(events.md §9, §10 items 40–43)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from caracalai_admin import AdminClient

from caracal_api.zone_events.shapes import AUTHORITY_RECORD_COLUMNS, SESSION_COLUMNS
from tests.conftest import BOOTSTRAP_TOKEN, Api, assert_envelope
from tests.integration.foundation.support import LoopTransport, open_api
from tests.integration.zone_events.zone_events_support import (
    at,
    seed_application,
    seed_authority_record,
    seed_session,
)

ODD_LABEL = 'tier,{"gold"}'


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with open_api(database_dsn, redis_url) as app:
        yield app


def client_for(api: Api) -> AdminClient:
    return AdminClient(
        api_url="http://caracal.test",
        admin_token=BOOTSTRAP_TOKEN,
        http_client=httpx.Client(transport=LoopTransport(api, asyncio.get_running_loop())),
        retries=0,
    )


# --- item 40 ---------------------------------------------------------------------------------


# events §10 item 40
async def test_fresh_zone_filters_csv_headers_and_errors(api: Api) -> None:
    zone = str((await api.zone())["id"])
    client = client_for(api)
    assert await asyncio.to_thread(client.authority_records.list, zone) == []
    assert await asyncio.to_thread(client.sessions.list, zone) == []
    records = f"/v1/zones/{zone}/authority-records"
    sessions = f"/v1/zones/{zone}/sessions"
    for path in (records, sessions):
        assert (await api.get(path)).json() == {"items": [], "next_cursor": None}
    assert (await api.get(records, params={"status": "active"})).status_code == 200
    assert (await api.get(sessions, params={"lifecycle": "task"})).status_code == 200
    records_csv = await api.get(records, params={"format": "csv"})
    assert records_csv.text == ",".join(AUTHORITY_RECORD_COLUMNS) + "\r\n"
    assert "authority_record_id" in records_csv.text.split(",")
    assert records_csv.headers["content-disposition"] == (
        f'attachment; filename="authority-records-{zone}.csv"'
    )
    sessions_csv = await api.get(sessions, params={"format": "csv"})
    assert sessions_csv.text == ",".join(SESSION_COLUMNS) + "\r\n"
    assert sessions_csv.headers["content-disposition"] == (
        f'attachment; filename="sessions-{zone}.csv"'
    )
    for path, bad in (
        (records, {"status": "zombie"}),
        (records, {"limit": "many"}),
        (sessions, {"status": "sleeping"}),
        (sessions, {"lifecycle": "forever"}),
        (sessions, {"limit": "-1"}),
        (records, {"subject_id": "s" * 257}),
        (sessions, {"label": "l" * 65}),
    ):
        assert_envelope(await api.get(path, params=bad), 400, "invalid_query")
    for path in (records, sessions):
        assert_envelope(await api.get(path, params={"cursor": "@@"}), 400, "invalid_cursor")


# --- item 41 ---------------------------------------------------------------------------------


# events §10 item 41
async def test_seeded_sessions_and_records(api: Api) -> None:
    zone = str((await api.zone())["id"])
    app_id = await seed_application(api, zone)
    parent_record = await seed_authority_record(api, zone, created_at=at(10), session_type="user")
    child_record = await seed_authority_record(
        api, zone, created_at=at(5), parent_id=parent_record, status="revoked",
        revoked_reason="grant_revoked",
    )  # fmt: skip
    refund = await seed_session(
        api, zone, app_id, parent_record, labels=["refund-worker", "eu"], started_at=at(3)
    )
    odd = await seed_session(api, zone, app_id, parent_record, labels=[ODD_LABEL],
                             started_at=at(2), parent_id=refund, depth=1)  # fmt: skip
    await seed_session(api, zone, app_id, parent_record, labels=["refund"], started_at=at(1))
    sessions = f"/v1/zones/{zone}/sessions"

    async def ids(**params: str) -> list[str]:
        response = await api.get(sessions, params=params)
        assert response.status_code == 200, response.text
        return [i["session_id"] for i in response.json()["items"]]

    assert await ids(label="refund-worker") == [refund]
    assert await ids(label=ODD_LABEL) == [odd]
    assert await ids(label="tier") == []
    assert await ids(parent_session_id=refund) == [odd]
    assert await ids(application_id=app_id, lifecycle="task", status="active") == [
        *(await ids()),
    ]  # fmt: skip
    items = (await api.get(sessions)).json()["items"]
    assert list(items[0]) == list(SESSION_COLUMNS)
    assert items[1]["labels"] == [ODD_LABEL]
    exported = await api.get(sessions, params={"format": "csv", "label": "refund-worker"})
    lines = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert lines[0] == list(SESSION_COLUMNS)
    row = dict(zip(lines[0], lines[1], strict=True))
    assert row["session_id"] == refund
    assert row["labels"] == "refund-worker eu"
    assert row["lifecycle"] == "task"
    odd_csv = await api.get(sessions, params={"format": "csv", "label": ODD_LABEL})
    assert '"tier,{""gold""}"' in odd_csv.text
    paged = (await api.get(sessions, params={"limit": "2"})).json()
    rest = await api.get(sessions, params={"limit": "2", "cursor": paged["next_cursor"]})
    assert [i["session_id"] for i in paged["items"] + rest.json()["items"]] == await ids()

    records = f"/v1/zones/{zone}/authority-records"
    listed = (await api.get(records)).json()["items"]
    assert [i["authority_record_id"] for i in listed] == [child_record, parent_record]
    assert list(listed[0])[: len(AUTHORITY_RECORD_COLUMNS)] == list(AUTHORITY_RECORD_COLUMNS)
    assert listed[0]["zone_id"] == zone
    assert listed[0]["parent_authority_record_id"] == parent_record
    assert (listed[0]["status"], listed[0]["revoked_reason"]) == ("revoked", "grant_revoked")
    assert listed[1]["authority_record_type"] == "user"
    revoked = (await api.get(records, params={"status": "revoked"})).json()["items"]
    assert [i["authority_record_id"] for i in revoked] == [child_record]
    by_id = (await api.get(records, params={"authority_record_id": parent_record})).json()
    assert [i["authority_record_id"] for i in by_id["items"]] == [parent_record]
    subject = listed[1]["subject_id"]
    by_subject = (await api.get(records, params={"subject_id": subject})).json()["items"]
    assert [i["authority_record_id"] for i in by_subject] == [parent_record]
    exported = await api.get(records, params={"format": "csv"})
    lines = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert lines[0] == list(AUTHORITY_RECORD_COLUMNS)
    assert [line[0] for line in lines[1:]] == [child_record, parent_record]


# --- item 42 ---------------------------------------------------------------------------------


# events §10 item 42
async def test_injection_looking_values_match_nothing(api: Api) -> None:
    zone = str((await api.zone())["id"])
    app_id = await seed_application(api, zone)
    record = await seed_authority_record(api, zone)
    await seed_session(api, zone, app_id, record, labels=["x"])
    value = "' OR '1'='1"
    checks = [
        ("grants", "subject_id"),
        ("admin-audit", "entity_id"),
        ("admin-audit", "actor_id"),
        ("step-up-challenges", "principal"),
        ("sessions", "label"),
        ("sessions", "application_id"),
        ("authority-records", "subject_id"),
        ("authority-records", "authority_record_id"),
        ("audit", "application_id"),
        ("audit", "label"),
    ]
    for collection, name in checks:
        response = await api.get(f"/v1/zones/{zone}/{collection}", params={name: value})
        assert response.status_code == 200, (collection, name, response.text)
        assert response.json()["items"] == [], (collection, name)


# --- item 43 ---------------------------------------------------------------------------------


# events §10 item 43
async def test_every_zone_event_route_needs_a_token(api: Api) -> None:
    zone = "z1"
    paths = [
        f"/v1/zones/{zone}/audit",
        f"/v1/zones/{zone}/audit/by-request/r1",
        f"/v1/zones/{zone}/audit/by-request/r1/explain",
        f"/v1/zones/{zone}/admin-audit",
        f"/v1/zones/{zone}/authority-records",
        f"/v1/zones/{zone}/sessions",
        "/v1/admin-audit",
    ]
    for path in paths:
        assert_envelope(await api.get(path, token=""), 401, "invalid_admin_token")
        assert_envelope(await api.get(path, token="cat_wrong"), 401, "invalid_admin_token")


async def test_zone_token_of_another_zone_is_refused(api: Api) -> None:
    zone = str((await api.zone())["id"])
    other = str((await api.zone())["id"])
    token = await api.mint("read", zone=other)
    response = await api.get(f"/v1/zones/{zone}/sessions", token=token["token"])
    assert response.status_code == 403
    own = await api.get(f"/v1/zones/{other}/sessions", token=token["token"])
    assert own.status_code == 200
