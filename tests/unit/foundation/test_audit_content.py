"""Content hashes of admin-audit rows: canonical and legacy formats (foundation §13.4)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from caracal_api.audit.content import (
    canonical_payload,
    chain_hmac,
    content_sha256,
    legacy_payload,
    legacy_ts,
    matches_content,
    strip_nul,
)
from caracal_api.audit.records import RequestFacts, build_record, rls_payload
from caracal_api.auth.actor import Actor

AT = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)


def fields(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": "01900000-0000-7000-8000-000000000001",
        "request_id": "req-1",
        "actor_id": "tok-1",
        "actor_name": "ops",
        "actor_scope": "global",
        "action": "PATCH /v1/zones/z1",
        "method": "PATCH",
        "path": "/v1/zones/z1",
        "zone_id": "z1",
        "entity_type": "zones",
        "entity_id": "z1",
        "status_code": 200,
        "payload_json": {
            "rls_zone_guc": "*",
            "rls_mode": "control_plane_wildcard",
            "changed_fields": ["name"],
            "change_kind": "update",
        },
        "occurred_at": AT,
    }
    values.update(overrides)
    return values


def by_hand(parts: list[str]) -> str:
    return hashlib.sha256("".join(p + "\x1f" for p in parts).encode("utf-8")).hexdigest()


# foundation §18 item 46 (canonical format)
def test_canonical_hash_by_hand() -> None:
    payload = (
        '{"change_kind":"update","changed_fields":["name"],'
        '"rls_mode":"control_plane_wildcard","rls_zone_guc":"*"}'
    )
    expected = by_hand(
        [
            "01900000-0000-7000-8000-000000000001",
            "req-1",
            "tok-1",
            "ops",
            "global",
            "PATCH /v1/zones/z1",
            "PATCH",
            "/v1/zones/z1",
            "z1",
            "zones",
            "z1",
            "200",
            payload,
            "2026-03-04T05:06:07.891234Z",
        ]
    )
    assert content_sha256(fields()) == expected
    assert matches_content(fields(), expected)


# foundation §18 item 46
def test_canonical_nulls_and_encoding() -> None:
    values = fields(
        actor_id=None,
        actor_name=None,
        actor_scope=None,
        zone_id=None,
        entity_type=None,
        entity_id=None,
        payload_json=None,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        status_code=401,
    )
    expected = by_hand(
        [
            values["id"],
            "req-1",
            "",
            "",
            "",
            "PATCH /v1/zones/z1",
            "PATCH",
            "/v1/zones/z1",
            "",
            "",
            "",
            "401",
            "",
            "2026-01-01T00:00:00.000000Z",
        ]
    )
    assert content_sha256(values) == expected
    # Sorted keys at every level, compact, non-ASCII unescaped.
    assert canonical_payload({"b": {"z": 1, "a": "ü"}, "a": [2, 1]}) == (
        '{"a":[2,1],"b":{"a":"ü","z":1}}'
    )
    assert canonical_payload(None) == ""


# foundation §18 item 46
def test_canonical_timestamp_is_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = AT.astimezone(plus_two)
    assert content_sha256(fields(occurred_at=local)) == content_sha256(fields())


# foundation §18 item 46, 49
def test_every_field_is_covered() -> None:
    base = content_sha256(fields())
    for name, value in fields().items():
        if name == "occurred_at":
            changed = value + timedelta(microseconds=1)
        elif name == "status_code":
            changed = 201
        elif name == "payload_json":
            changed = {**value, "extra": 1}
        else:
            changed = f"{value}x"
        assert content_sha256(fields(**{name: changed})) != base, name


# foundation §18 item 49 (legacy format)
def test_legacy_hash_by_hand() -> None:
    payload = {
        "zz_unknown": 1,
        "ab": "ü",
        "changed_fields": ["name"],
        "rls_zone_guc": "*",
        "change_kind": "update",
        "rls_mode": "control_plane_wildcard",
        "b": True,
    }
    legacy_text = (
        '{"rls_mode":"control_plane_wildcard","rls_zone_guc":"*","change_kind":"update",'
        '"changed_fields":["name"],"b":true,"ab":"ü","zz_unknown":1}'
    )
    assert legacy_payload(payload) == legacy_text
    values = fields(payload_json=payload)
    parts = [str(values[k]) for k in list(values)[:12]]
    stored = by_hand([*parts, legacy_text, "2026-03-04T05:06:07.891Z"])
    assert stored != content_sha256(values)
    assert matches_content(values, stored)
    # The same row in the canonical form matches too; anything else does not.
    assert matches_content(values, content_sha256(values))
    assert not matches_content(values, "0" * 64)
    assert not matches_content(values, None)
    assert not matches_content(fields(payload_json={**payload, "ab": "x"}), stored)


# foundation §18 item 49
def test_legacy_key_order_of_the_dcr_record() -> None:
    payload = {
        "revoked_delegations": 0,
        "terminated_sessions": 1,
        "dcr_shutdown_mode": "revoke_live",
        "revoked_applications": 2,
        "live_dcr_applications": 2,
        "revoked_authority_records": 3,
        "dcr_registration_disabled": True,
        "operator": "x",
    }
    assert list(json.loads(legacy_payload(payload))) == [
        "operator",
        "dcr_registration_disabled",
        "dcr_shutdown_mode",
        "live_dcr_applications",
        "revoked_applications",
        "revoked_authority_records",
        "terminated_sessions",
        "revoked_delegations",
    ]
    assert legacy_payload(None) == ""


# foundation §18 item 49
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC), "2026-01-01T00:00:00.999Z"),
        (datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=UTC), "2026-01-01T00:00:00.000Z"),
        (
            datetime(2026, 1, 1, 2, 0, 0, 1500, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-01T00:00:00.001Z",
        ),
    ],
)
def test_legacy_timestamps_truncate_to_milliseconds(value: datetime, text: str) -> None:
    assert legacy_ts(value) == text


# foundation §18 item 46
def test_nul_is_removed_before_hashing_and_storing() -> None:
    assert strip_nul({"a\x00b": ["x\x00", {"k": "v\x00"}], "n": 1}) == {
        "ab": ["x", {"k": "v"}],
        "n": 1,
    }
    actor = Actor(
        id="tok",
        name="na\x00me",
        scope="global",
        zone_id=None,
        capability="write",
        created_by="cli",
    )
    record = build_record(
        RequestFacts("req", "PATCH", "/v1/zones/z\x00", actor),
        status_code=400,
        occurred_at=AT,
        payload={"k\x00": "v\x00"},
    )
    assert record["actor_name"] == "name"
    assert record["path"] == "/v1/zones/z"
    assert record["payload_json"] == {"k": "v"}
    assert record["content_sha256"] == content_sha256(record)


# foundation §18 item 45
def test_record_fields() -> None:
    actor = Actor(
        id="tok", name="zone ops", scope="zone", zone_id="z1", capability="write", created_by="cli"
    )
    record = build_record(
        RequestFacts("req", "POST", "/v1/zones/z1/applications", actor),
        status_code=201,
        occurred_at=AT,
        payload=rls_payload(actor),
        response_body={"id": "app"},
    )
    assert record["action"] == "POST /v1/zones/z1/applications"
    assert (record["zone_id"], record["entity_type"], record["entity_id"]) == (
        "z1",
        "applications",
        "app",
    )
    assert record["payload_json"] == {"rls_mode": "zone_scoped", "rls_zone_guc": "z1"}
    assert rls_payload(None) == {"rls_mode": "control_plane_wildcard", "rls_zone_guc": "*"}
    assert len(record["content_sha256"]) == 64


# foundation §18 item 46
def test_chain_hmac() -> None:
    key = bytes(range(32))
    content, prev = "a" * 64, "b" * 64
    expected = hmac.new(key, f"{content}|{prev}".encode(), hashlib.sha256).hexdigest()
    assert chain_hmac(key, content, prev) == expected
    assert (
        chain_hmac(key, content, "")
        == hmac.new(key, f"{content}|".encode(), hashlib.sha256).hexdigest()
    )
