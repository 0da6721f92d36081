"""Decision audit reads E1–E3 (events.md §9, §10 items 14, 15, 36–39)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from caracalai_admin import AdminClient
from caracalai_admin.errors import AdminApiError
from redis.asyncio import Redis

from caracal_api.zone_events.shapes import AUDIT_EXPORT_FIELDS
from tests.conftest import AUDIT_KEY, BOOTSTRAP_TOKEN, Api, assert_envelope
from tests.fixtures import pg
from tests.integration.foundation.support import LoopTransport, fetch, open_api
from tests.integration.zone_events.zone_events_support import at, new_id, seed_event

ITEM_KEYS = [
    "id", "zone_id", "event_type", "request_id", "decision", "policy_set_id",
    "policy_set_version_id", "manifest_sha", "evaluation_status", "determining_policies_json",
    "diagnostics_json", "metadata_json", "occurred_at", "ingested_at",
]  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with open_api(database_dsn, redis_url) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def zone(api: Api) -> str:
    return str((await api.zone())["id"])


def client_for(api: Api) -> AdminClient:
    return AdminClient(
        api_url="http://caracal.test",
        admin_token=BOOTSTRAP_TOKEN,
        http_client=httpx.Client(transport=LoopTransport(api, asyncio.get_running_loop())),
        retries=0,
    )


def audit(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/audit"


# --- item 36 ---------------------------------------------------------------------------------


# events §10 item 36
async def test_fresh_zone_and_query_rules(api: Api, zone: str) -> None:
    assert await asyncio.to_thread(client_for(api).audit.list, zone) == []
    raw = await api.get(audit(zone))
    assert raw.json() == {"items": [], "next_cursor": None}
    accepted = await api.get(
        audit(zone),
        params={
            "decision": "deny",
            "event_type": "token_exchange,step_up_issued",
            "since": "2020-01-01T00:00:00Z",
            "application_id": "app-x",
            "label": "customer:1",
            "limit": "5",
        },
    )
    assert accepted.status_code == 200
    assert accepted.json() == {"items": [], "next_cursor": None}
    many = ",".join(f"t{i}" for i in range(17))
    for bad in (
        {"decision": "maybe"},
        {"limit": "0"},
        {"limit": "1001"},
        {"until": "soon"},
        {"event_type": many},
        {"event_type": ",,"},
        {"event_type": "x" * 513},
        {"format": "xml"},
        {"request_id": "r" * 129},
        {"label": "l" * 65},
    ):
        assert_envelope(await api.get(audit(zone), params=bad), 400, "invalid_query")
    assert_envelope(await api.get(audit(zone), params={"fields": "nope"}), 400, "invalid_fields")
    assert_envelope(await api.get(audit(zone), params={"cursor": "garbage"}), 400,
                    "invalid_cursor")  # fmt: skip
    sixteen = ",".join(f"t{i}" for i in range(16))
    assert (await api.get(audit(zone), params={"event_type": sixteen})).status_code == 200
    # Validation order: query → fields → list parsing → cursor.
    ordered = await api.get(audit(zone), params={"fields": "nope", "limit": "0"})
    assert_envelope(ordered, 400, "invalid_query")
    ordered = await api.get(audit(zone), params={"fields": "nope", "event_type": ",,"})
    assert_envelope(ordered, 400, "invalid_fields")
    ordered = await api.get(audit(zone), params={"event_type": ",,", "cursor": "@@"})
    assert_envelope(ordered, 400, "invalid_query")


# --- item 37 ---------------------------------------------------------------------------------


# events §10 item 37
async def test_csv_rules(api: Api, zone: str) -> None:
    await seed_event(api, zone, event_type="=cmd|' /C calc'!A0", decision="deny",
                     occurred_at=at(3))  # fmt: skip
    await seed_event(api, zone, event_type='a,b "quoted"', occurred_at=at(2))
    await seed_event(api, zone, event_type="multi\nline", occurred_at=at(1))
    response = await api.get(
        audit(zone), params={"format": "csv", "fields": "id,event_type,decision"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="audit-{zone}.csv"'
    assert response.headers["x-content-type-options"] == "nosniff"
    text = response.text
    assert text.startswith("id,event_type,decision\r\n")
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "event_type", "decision"]
    assert [r[1] for r in rows[1:]] == ["multi\nline", 'a,b "quoted"', "'=cmd|' /C calc'!A0"]
    assert '"a,b ""quoted"""' in text
    assert "x-next-cursor" not in response.headers
    full = await api.get(audit(zone), params={"format": "csv", "limit": "2"})
    header = full.text.split("\r\n", 1)[0]
    assert header == ",".join(AUDIT_EXPORT_FIELDS)
    assert full.headers["x-next-cursor"]
    following = await api.get(
        audit(zone),
        params={"format": "csv", "limit": "2", "cursor": full.headers["x-next-cursor"]},
    )
    assert len(list(csv.reader(io.StringIO(following.text, newline="")))) == 2


# --- item 38 ---------------------------------------------------------------------------------


# events §10 item 38
async def test_seeded_events_redaction_filters_and_paging(api: Api, zone: str) -> None:
    first = await seed_event(
        api,
        zone,
        event_type="token_exchange",
        decision="deny",
        determining_policies_json=[{"policy": "deny-refunds"}, {"policy": "quota"}],
        metadata_json={
            "application_id": "app-1",
            "agent_session_id": "agent-1",
            "session_id": "ar-1",
            "agent_labels": ["customer:1", "refund-worker"],
            "token": "tok-secret",
            "nested": {"client_secret": "cs", "keep": "k"},
        },
        occurred_at=at(5),
    )
    second = await seed_event(
        api,
        zone,
        event_type="step_up_issued",
        metadata_json={"application_id": "app-2", "agent_labels": ["other"]},
        occurred_at=at(4),
    )
    third = await seed_event(api, zone, event_type="gateway_request", occurred_at=at(3))
    page = (await api.get(audit(zone))).json()
    assert [i["id"] for i in page["items"]] == [third["id"], second["id"], first["id"]]
    item = page["items"][2]
    assert list(item) == ITEM_KEYS
    meta = item["metadata_json"]
    assert meta["token"] == "[redacted]"
    assert meta["session_id"] == "[redacted]"
    assert meta["nested"] == {"client_secret": "[redacted]", "keep": "k"}
    assert "tok-secret" not in json.dumps(page)

    async def ids(**params: str) -> list[str]:
        body = (await api.get(audit(zone), params=params)).json()
        return [i["id"] for i in body["items"]]

    assert await ids(application_id="app-1") == [first["id"]]
    assert await ids(session_id="agent-1") == [first["id"]]
    assert await ids(authority_record_id="ar-1") == [first["id"]]
    assert await ids(label="customer:1") == [first["id"]]
    assert await ids(label="customer") == []
    assert await ids(event_type="step_up_issued, gateway_request") == [third["id"], second["id"]]
    assert await ids(event_type="step_up_issued") == [second["id"]]
    assert await ids(decision="deny") == [first["id"]]
    assert await ids(request_id=first["request_id"]) == [first["id"]]
    assert await ids(until=first["occurred_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == []
    assert await ids(since=first["occurred_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == [
        third["id"], second["id"], first["id"],
    ]  # fmt: skip
    full = (await api.get(audit(zone), params={"limit": "2"})).json()
    assert full["next_cursor"] is not None
    rest = await api.get(audit(zone), params={"limit": "2", "cursor": full["next_cursor"]})
    assert [i["id"] for i in rest.json()["items"]] == [first["id"]]
    assert rest.json()["next_cursor"] is None
    projected = (
        await api.get(audit(zone), params={"fields": "id,determining_policies,agent_labels"})
    ).json()["items"][2]
    assert projected == {
        "id": first["id"],
        "determining_policies": ["deny-refunds", "quota"],
        "agent_labels": ["customer:1", "refund-worker"],
    }
    exported = await api.get(
        audit(zone),
        params={"format": "csv", "fields": "id,determining_policies", "decision": "deny"},
    )
    assert exported.text == f"id,determining_policies\r\n{first['id']},deny-refunds quota\r\n"


# --- item 39 ---------------------------------------------------------------------------------


# events §10 item 39
async def test_by_request_and_explain(api: Api, zone: str) -> None:
    client = client_for(api)
    for path in ("nope", "nope/explain"):
        assert_envelope(await api.get(f"{audit(zone)}/by-request/{path}"), 404,
                        "request_not_found")  # fmt: skip
        long_id = await api.get(f"{audit(zone)}/by-request/{'r' * 200}")
        assert_envelope(long_id, 400, "invalid_params")
    for call in (lambda: client.audit.by_request(zone, "nope"),
                 lambda: client.audit.explain(zone, "nope")):  # fmt: skip
        with pytest.raises(AdminApiError) as info:
            await asyncio.to_thread(call)
        assert (info.value.status, info.value.code) == (404, "request_not_found")

    denied_request = new_id("req")
    allow = await seed_event(api, zone, request_id=denied_request, decision="allow",
                             occurred_at=at(2))  # fmt: skip
    deny = await seed_event(
        api,
        zone,
        request_id=denied_request,
        decision="deny",
        evaluation_status="complete",
        determining_policies_json=[{"policy": "p1", "rule": "deny"}],
        metadata_json={
            "application_id": "app-9",
            "application_registration_method": "managed",
            "session_id": "ar-raw-1",
            "agent_session_id": "agent-7",
            "agent_lifecycle": "task",
            "agent_labels": ["eu"],
            "resource": "https://api.example/orders",
            "requested_scopes": ["orders:read"],
            "delegation_edge_id": "edge-3",
        },
        occurred_at=at(1),
    )
    events = (await api.get(f"{audit(zone)}/by-request/{denied_request}")).json()
    assert isinstance(events, list)
    assert [e["id"] for e in events] == [allow["id"], deny["id"]]
    assert events[1]["metadata_json"]["session_id"] == "[redacted]"
    assert await asyncio.to_thread(client.audit.by_request, zone, denied_request) == events
    explained = (await api.get(f"{audit(zone)}/by-request/{denied_request}/explain")).json()
    assert list(explained) == ["request_id", "zone_id", "final_decision", "denied", "events"]
    assert explained["final_decision"] == "deny"
    (denied,) = explained["denied"]
    assert denied["event_id"] == deny["id"]
    assert denied["determining_policies"] == [{"policy": "p1", "rule": "deny"}]
    assert denied["diagnostics"] == []
    assert denied["metadata"]["session_id"] == "[redacted]"
    policy_input = denied["policy_input"]
    assert policy_input == {
        "schema_version": "2026-05-20",
        "principal": {
            "type": "Application",
            "id": "app-9",
            "zone_id": zone,
            "registration_method": "managed",
            "agent_session_id": "agent-7",
            "lifecycle": "task",
            "labels": ["eu"],
        },
        "resource": {
            "type": "Resource",
            "identifier": "https://api.example/orders",
            "scopes": ["orders:read"],
        },
        "action": {"id": "TokenExchange"},
        "context": {
            "actor_claims": {},
            "requested_scopes": ["orders:read"],
            "challenge_resolved": False,
            "session_id": "ar-raw-1",
            "agent_session_id": "agent-7",
            "delegation_edge_id": "edge-3",
        },
        "session": {"id": "ar-raw-1"},
        "delegation_edge": {"id": "edge-3"},
    }
    assert explained["events"] == events

    allowed_request = new_id("req")
    await seed_event(api, zone, request_id=allowed_request, decision="allow")
    plain = (await api.get(f"{audit(zone)}/by-request/{allowed_request}/explain")).json()
    assert (plain["final_decision"], plain["denied"]) == ("allow", [])
    via_client = await asyncio.to_thread(client.audit.explain, zone, allowed_request)
    assert via_client["final_decision"] == "allow"


# --- items 14, 15 ----------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def worker_api(redis_url: str) -> AsyncIterator[Api]:
    """An app with workers on a database and Redis index of its own: the shared ones hold
    thousands of rows left by tests that ran without workers (some dead or backing off by
    design), and draining them is not what this latency check measures."""
    admin = pg.admin_dsn()
    name = f"caracal_reveal_{os.getpid()}"
    dsn = await pg.create_migrated_database(admin, name)
    own_redis = redis_url.rsplit("/", 1)[0] + "/14"
    client = Redis.from_url(own_redis)
    await client.flushdb()
    await client.aclose()
    try:
        async with open_api(dsn, own_redis, workers=True) as app:
            yield app
    finally:
        await pg.drop_database(admin, name)


# events §10 items 14 and 15
async def test_reveal_reaches_the_audit_reads_within_a_second(worker_api: Api) -> None:
    api = worker_api
    zone = str((await api.zone())["id"])
    created = await api.post(
        f"/v1/zones/{zone}/applications",
        json={"name": new_id("Revealed"), "registration_method": "managed"},
    )
    assert created.status_code == 201, created.text
    app = created.json()
    request_id = new_id("reveal")
    reveal = await api.get(
        f"/v1/zones/{zone}/applications/{app['id']}/client-secret",
        headers={"x-request-id": request_id},
    )
    assert reveal.status_code == 200, reveal.text
    secret = reveal.json()["client_secret"]
    revealed = time.monotonic()
    (row,) = await fetch(
        api, "SELECT payload_json FROM event_outbox WHERE request_id = :r", r=request_id
    )
    payload = row.payload_json
    assert payload["id"] == request_id
    data = json.loads(payload["data"])
    assert data["event_type"] == "credential_revealed"
    assert data["zone_id"] == zone
    assert data["metadata_json"]["application_id"] == app["id"]
    assert (
        payload["sig"] == hmac.new(AUDIT_KEY, payload["data"].encode(), hashlib.sha256).hexdigest()
    )
    assert secret not in json.dumps(payload)

    async def listed() -> Any:
        response = await api.get(f"{audit(zone)}/by-request/{request_id}")
        return response.json() if response.status_code == 200 else None

    events = None
    while time.monotonic() - revealed < 3:
        events = await listed()
        if events:
            break
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - revealed
    assert events, "event not ingested"
    # Outbox dispatch (LISTEN wake-up) + ingest: well within a second on a quiet host.
    assert elapsed < 1.5
    assert events[0]["event_type"] == "credential_revealed"
    page = (await api.get(audit(zone), params={"request_id": request_id})).json()
    assert [i["id"] for i in page["items"]] == [events[0]["id"]]
    (stored,) = await fetch(
        api,
        "SELECT ingest_signature, chain_seq, content_sha256 FROM audit_events WHERE zone_id = :z",
        z=zone,
    )
    assert stored.ingest_signature == payload["sig"]
    assert stored.chain_seq == 1
    assert secret not in json.dumps(events)
