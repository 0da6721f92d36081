"""Step-up challenges S1–S5 (events.md §8, §10 items 22–29, 42, 43)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from caracalai_admin import AdminClient
from caracalai_admin.errors import AdminApiError

from tests.conftest import AUDIT_KEY, BOOTSTRAP_TOKEN, Api, assert_envelope
from tests.integration.foundation.support import (
    LoopTransport,
    bootstrap_id,
    execute,
    fetch,
    open_api,
    wait_records,
)

STATES = ("pending", "approved", "rejected", "expired", "consumed")
TS = "2026-01-01T00:00:00.000000Z"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with open_api(database_dsn, redis_url) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def zone(api: Api) -> str:
    return str((await api.zone())["id"])


def client_for(api: Api, token: str = BOOTSTRAP_TOKEN) -> AdminClient:
    transport = LoopTransport(api, asyncio.get_running_loop())
    return AdminClient(
        api_url="http://caracal.test",
        admin_token=token,
        http_client=httpx.Client(transport=transport),
        retries=0,
    )


async def seed(api: Api, zone_id: str, **columns: Any) -> str:
    """Insert a challenge as the STS would (direct SQL); returns its id."""
    values: dict[str, Any] = {
        "id": f"ch-{secrets.token_hex(6)}",
        "zone_id": zone_id,
        "challenge_type": "human_approval",
        "principal_id": f"user-{secrets.token_hex(4)}",
        "session_id": f"sess-{secrets.token_hex(4)}",
        "metadata_json": "{}",
        "expires_in": "1 hour",
        "created_ago": "0 seconds",
    }
    values.update(columns)
    expires_in = values.pop("expires_in")
    created_ago = values.pop("created_ago")
    names = list(values)
    placeholders = [
        "CAST(:metadata_json AS jsonb)" if n == "metadata_json" else f":{n}" for n in names
    ]
    await execute(
        api,
        f"INSERT INTO step_up_challenges ({', '.join(names)}, expires_at, created_at)"
        f" VALUES ({', '.join(placeholders)}, now() + CAST(CAST(:exp AS text) AS interval),"
        " now() - CAST(CAST(:ago AS text) AS interval))",
        **values,
        exp=expires_in,
        ago=created_ago,
    )
    return str(values["id"])


def base(zone_id: str) -> str:
    return f"/v1/zones/{zone_id}/step-up-challenges"


# --- item 22 ---------------------------------------------------------------------------------


# events §10 item 22
async def test_new_zone_lists_nothing_and_counts_zero(api: Api, zone: str) -> None:
    raw = await api.get(base(zone))
    assert raw.status_code == 200
    assert raw.json() == {"items": [], "next_cursor": None}
    assert await asyncio.to_thread(client_for(api).step_up_challenges.list, zone) == []
    counts = await api.get(base(zone) + "/counts")
    assert counts.json() == {s: 0 for s in STATES}
    unknown = await api.get(base("no-such-zone"))
    assert unknown.json() == {"items": [], "next_cursor": None}


# --- item 23 ---------------------------------------------------------------------------------


# events §10 item 23
async def test_filters_accepted_and_rejected(api: Api, zone: str) -> None:
    for state in STATES:
        assert (await api.get(base(zone), params={"state": state})).status_code == 200
    ok = {"tier": "t" * 64, "principal": "p" * 128, "since": TS, "until": TS, "limit": "500"}
    assert (await api.get(base(zone), params=ok)).status_code == 200
    for bad in (
        {"state": "maybe"},
        {"since": "yesterday"},
        {"until": "2024-13-45T00:00:00Z"},
        {"tier": "t" * 65},
        {"principal": "p" * 129},
        {"limit": "0"},
        {"limit": "501"},
        {"state": "Pending"},
    ):
        assert_envelope(await api.get(base(zone), params=bad), 400, "invalid_query")
    assert_envelope(await api.get(base(zone), params={"cursor": "garbage"}), 400, "invalid_cursor")
    # Filters are validated before the cursor.
    both = await api.get(base(zone), params={"cursor": "garbage", "state": "maybe"})
    assert_envelope(both, 400, "invalid_query")


# --- item 24 ---------------------------------------------------------------------------------


# events §10 item 24
async def test_seeded_states_filters_binding_and_prior_counts(api: Api, zone: str) -> None:
    binding = bytes.fromhex("ab01ff")
    pending = await seed(api, zone, resource_set_hash=binding, tier="gold", created_ago="5 min")
    approved = await seed(api, zone, resource_set_hash=binding, created_ago="4 min")
    await execute(
        api, "UPDATE step_up_challenges SET satisfied_at = now() WHERE id = :i", i=approved
    )
    rejected = await seed(api, zone, resource_set_hash=binding, created_ago="3 min")
    await execute(
        api, "UPDATE step_up_challenges SET rejected_at = now() WHERE id = :i", i=rejected
    )
    expired = await seed(api, zone, expires_in="-1 minute", created_ago="2 min")
    lapsed = await seed(api, zone, expires_in="-1 second", created_ago="1 min")
    await execute(api, "UPDATE step_up_challenges SET satisfied_at = now() WHERE id = :i", i=lapsed)
    consumed = await seed(api, zone, created_ago="30 seconds")
    await execute(
        api,
        "UPDATE step_up_challenges SET satisfied_at = now(), consumed_at = now() WHERE id = :i",
        i=consumed,
    )
    expected = {
        pending: "pending",
        approved: "approved",
        rejected: "rejected",
        expired: "expired",
        lapsed: "expired",
        consumed: "consumed",
    }
    listed = (await api.get(base(zone))).json()["items"]
    assert [i["id"] for i in listed] == [consumed, lapsed, expired, rejected, approved, pending]
    assert {i["id"]: i["state"] for i in listed} == expected
    first = next(i for i in listed if i["id"] == pending)
    assert list(first) == [
        "id", "zone_id", "session_id", "principal_id", "application_id", "challenge_type",
        "tier", "approver_class", "privacy_mode", "binding", "metadata_json", "decision_reason",
        "created_at", "expires_at", "satisfied_at", "rejected_at", "consumed_at",
        "approver_subject_id", "prior_approved", "prior_rejected", "state",
    ]  # fmt: skip
    assert first["binding"] == "ab01ff"
    assert (first["prior_approved"], first["prior_rejected"]) == (1, 1)
    no_hash = next(i for i in listed if i["id"] == expired)
    assert (no_hash["binding"], no_hash["prior_approved"], no_hash["prior_rejected"]) == (
        None, 0, 0,
    )  # fmt: skip
    for challenge_id, state in expected.items():
        one = (await api.get(f"{base(zone)}/{challenge_id}")).json()
        assert one["state"] == state
        assert "approver_session_id" not in one
        filtered = (await api.get(base(zone), params={"state": state})).json()["items"]
        assert challenge_id in {i["id"] for i in filtered}
        assert all(i["state"] == state for i in filtered)
    counts = (await api.get(base(zone) + "/counts")).json()
    assert counts == {"pending": 1, "approved": 1, "rejected": 1, "expired": 2, "consumed": 1}
    # `until` is inclusive, `since` too.
    created = first["created_at"]
    at = (await api.get(base(zone), params={"since": created, "until": created})).json()
    assert [i["id"] for i in at["items"]] == [pending]
    tiered = (await api.get(base(zone), params={"tier": "gold"})).json()["items"]
    assert [i["id"] for i in tiered] == [pending]
    by_principal = await api.get(base(zone), params={"principal": first["principal_id"]})
    assert [i["id"] for i in by_principal.json()["items"]] == [pending]
    # Paging: limit 2 → cursors through all six without repeats.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.get(base(zone), params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in listed]


# --- item 25 ---------------------------------------------------------------------------------


# events §10 item 25
async def test_unknown_and_malformed_ids(api: Api, zone: str) -> None:
    for method, suffix in (("GET", ""), ("POST", "/approve"), ("POST", "/reject")):
        response = await api.request(method, f"{base(zone)}/nope{suffix}")
        assert_envelope(response, 404, "challenge_not_found")
        long_id = await api.request(method, f"{base(zone)}/{'x' * 200}{suffix}")
        assert_envelope(long_id, 400, "invalid_params")
    client = client_for(api)
    for call in (
        lambda: client.step_up_challenges.get(zone, "nope"),
        lambda: client.step_up_challenges.approve(zone, "nope"),
        lambda: client.step_up_challenges.reject(zone, "nope", reason="no"),
    ):
        with pytest.raises(AdminApiError) as info:
            await asyncio.to_thread(call)
        assert (info.value.status, info.value.code) == (404, "challenge_not_found")


# --- item 26 ---------------------------------------------------------------------------------


# events §10 item 26
async def test_body_rules_checked_before_lookup(api: Api, zone: str) -> None:
    for body in ({"reason": "r" * 501}, {"reason": 5}, {"reason": ["a"]}, {"reason": {}}, [1]):
        response = await api.post(f"{base(zone)}/nope/approve", json=body)
        assert_envelope(response, 400, "invalid_body")
    challenge = await seed(api, zone)
    no_body = await api.post(f"{base(zone)}/{challenge}/approve")
    assert no_body.status_code == 200, no_body.text
    for body in ({}, None, {"reason": None}, {"other": 1}):
        fresh = await seed(api, zone)
        response = await api.post(f"{base(zone)}/{fresh}/reject", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "rejected"
    exact = await seed(api, zone)
    ok = await api.post(f"{base(zone)}/{exact}/approve", json={"reason": "r" * 500})
    assert ok.status_code == 200


def audit_data(row: Any) -> dict[str, Any]:
    return json.loads(row.payload_json["data"])  # type: ignore[no-any-return]


# --- item 27 ---------------------------------------------------------------------------------


# events §10 item 27
async def test_approve_publishes_step_up_decided_and_is_audited(api: Api, zone: str) -> None:
    challenge = await seed(
        api,
        zone,
        resource_set_hash=bytes.fromhex("00ff10"),
        tier="t1",
        metadata_json=json.dumps({"agent_labels": ["refund-worker", "eu"], "x": 1}),
    )
    approver = await api.mint("approve")
    response = await api.post(
        f"{base(zone)}/{challenge}/approve",
        json={"reason": "looks fine"},
        token=approver["token"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["id", "state", "satisfied_at", "rejected_at", "approver_subject_id"]
    assert body["state"] == "approved"
    assert body["rejected_at"] is None
    assert body["approver_subject_id"] == f"admin:{approver['id']}"
    request_id = response.headers["x-request-id"]
    rows = await fetch(
        api,
        "SELECT stream_name, payload_json, request_id FROM event_outbox WHERE request_id = :r",
        r=request_id,
    )
    assert len(rows) == 1
    assert rows[0].stream_name == "caracal.audit.events"
    assert rows[0].payload_json["id"] == request_id
    data_text = rows[0].payload_json["data"]
    assert (
        rows[0].payload_json["sig"]
        == hmac.new(AUDIT_KEY, data_text.encode(), hashlib.sha256).hexdigest()
    )
    data = audit_data(rows[0])
    assert data["event_type"] == "step_up_decided"
    assert data["decision"] == "approved"
    assert data["zone_id"] == zone
    assert data["request_id"] == request_id
    meta = data["metadata_json"]
    assert list(meta) == [
        "challenge_id", "tier", "approver_class", "privacy_mode", "binding", "session_id",
        "approver_plane", "approver_subject_id", "reason", "agent_labels",
    ]  # fmt: skip
    assert meta["approver_plane"] == "operator"
    assert meta["binding"] == "00ff10"
    assert meta["agent_labels"] == ["refund-worker", "eu"]
    assert meta["reason"] == "looks fine"
    assert meta["approver_subject_id"] == f"admin:{approver['id']}"
    stored = (await api.get(f"{base(zone)}/{challenge}")).json()
    assert stored["decision_reason"] == "looks fine"
    assert stored["state"] == "approved"
    (record,) = await wait_records(api, request_id)
    assert (record.entity_type, record.entity_id, record.status_code) == (
        "step-up-challenges", challenge, 200,
    )  # fmt: skip
    assert record.payload_json["change_kind"] == "action"
    assert record.payload_json["changed_fields"] == ["reason"]

    rejected = await seed(api, zone, application_id=None, tier=None)
    response = await api.post(f"{base(zone)}/{rejected}/reject", json={"reason": "nope"})
    assert response.json()["state"] == "rejected"
    assert response.json()["satisfied_at"] is None
    assert response.json()["approver_subject_id"] == f"admin:{await bootstrap_id(api)}"
    stored = (await api.get(f"{base(zone)}/{rejected}")).json()
    assert (stored["decision_reason"], stored["state"]) == ("nope", "rejected")
    (row,) = await fetch(
        api, "SELECT payload_json FROM event_outbox WHERE request_id = :r",
        r=response.headers["x-request-id"],
    )  # fmt: skip
    meta = audit_data(row)["metadata_json"]
    assert audit_data(row)["decision"] == "rejected"
    assert meta["tier"] == ""
    assert "application_id" not in meta
    assert "agent_labels" not in meta


# --- item 28 ---------------------------------------------------------------------------------


# events §10 item 28
async def test_not_decidable_cases(api: Api, zone: str) -> None:
    subject_only = await seed(api, zone, approver_class="subject")
    response = await api.post(f"{base(zone)}/{subject_only}/approve")
    assert_envelope(response, 403, "subject_approval_required")
    any_class = await seed(api, zone, approver_class="any")
    assert (await api.post(f"{base(zone)}/{any_class}/approve")).status_code == 200
    expired = await seed(api, zone, expires_in="-1 second")
    body = assert_envelope(
        await api.post(f"{base(zone)}/{expired}/reject"), 409, "challenge_not_decidable"
    )
    assert body["state"] == "expired"
    twice = await seed(api, zone)
    assert (await api.post(f"{base(zone)}/{twice}/approve")).status_code == 200
    for action in ("approve", "reject"):
        again = assert_envelope(
            await api.post(f"{base(zone)}/{twice}/{action}"), 409, "challenge_not_decidable"
        )
        assert again["state"] == "approved"
    # A subject-only challenge that is no longer pending is a conflict, not a 403.
    subject_expired = await seed(api, zone, approver_class="subject", expires_in="-1 second")
    late = await api.post(f"{base(zone)}/{subject_expired}/approve")
    assert assert_envelope(late, 409, "challenge_not_decidable")["state"] == "expired"
    # Another zone's challenge is not found from this zone.
    other = str((await api.zone())["id"])
    foreign = await seed(api, other)
    assert_envelope(await api.post(f"{base(zone)}/{foreign}/approve"), 404, "challenge_not_found")


# --- item 29 ---------------------------------------------------------------------------------


# events §10 item 29
async def test_concurrent_approvals_one_wins(api: Api, zone: str) -> None:
    for _ in range(3):
        challenge = await seed(api, zone)
        responses = await asyncio.gather(
            api.post(f"{base(zone)}/{challenge}/approve"),
            api.post(f"{base(zone)}/{challenge}/reject"),
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409]
        loser = next(r for r in responses if r.status_code == 409)
        assert loser.json()["state"] in ("approved", "rejected")


# --- capability gates, injection, anonymous ---------------------------------------------------


async def test_decisions_need_the_approve_capability(api: Api, zone: str) -> None:
    challenge = await seed(api, zone)
    writer = await api.mint("write")
    reader = await api.mint("read")
    assert_envelope(
        await api.post(f"{base(zone)}/{challenge}/approve", token=writer["token"]),
        403, "approve_capability_required",
    )  # fmt: skip
    assert_envelope(
        await api.post(f"{base(zone)}/{challenge}/reject", token=reader["token"]),
        403, "admin_token_read_only",
    )  # fmt: skip
    assert (await api.get(base(zone), token=reader["token"])).status_code == 200
    zone_approver = await api.mint("approve", zone=zone)
    ok = await api.post(f"{base(zone)}/{challenge}/approve", token=zone_approver["token"])
    assert ok.status_code == 200


# events §10 item 42 (step-up part)
async def test_injection_looking_filters_match_nothing(api: Api, zone: str) -> None:
    await seed(api, zone, tier="gold")
    for name in ("tier", "principal"):
        response = await api.get(base(zone), params={name: "' OR '1'='1"})
        assert response.status_code == 200
        assert response.json()["items"] == []


# events §10 item 43 (step-up part)
async def test_anonymous_is_401(api: Api, zone: str) -> None:
    for method, suffix in (
        ("GET", ""), ("GET", "/counts"), ("GET", "/x"), ("POST", "/x/approve"),
        ("POST", "/x/reject"),
    ):  # fmt: skip
        response = await api.request(method, base(zone) + suffix, token="")
        assert_envelope(response, 401, "invalid_admin_token")
