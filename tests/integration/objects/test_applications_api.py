"""Applications A1–A8, DCR and the secret store through the HTTP API (objects.md §7, 1–24)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from caracal_api.applications.repository import SWEEP_LOCK_KEY
from caracal_api.applications.secrets import verify_client_secret_sync
from caracal_api.applications.sweep import sweep_expired_dcr
from caracal_api.metrics import SECRET_BACKEND_ERRORS, SECRET_BACKEND_OPERATIONS
from caracal_api.secret_store.service import SecretStore
from tests.conftest import Api, AppFactory, assert_envelope
from tests.integration.objects.conftest import sql

HASH_RE = re.compile(r"^argon2id\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")
ISSUE_KEYS = [
    "id", "zone_id", "name", "registration_method", "expires_at", "created_by",
    "created_via_operator", "updated_by", "updated_via_operator", "created_at", "updated_at",
    "client_secret",
]  # fmt: skip
READ_KEYS = [
    "id", "zone_id", "name", "registration_method", "traits", "expires_at", "archived_at",
    "created_by", "created_via_operator", "updated_by", "updated_via_operator", "created_at",
    "updated_at",
]  # fmt: skip


def apps(zone: dict[str, Any]) -> str:
    return f"/v1/zones/{zone['id']}/applications"


async def create(api: Api, zone: dict[str, Any], name: str = "app", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "registration_method": "managed", **extra}
    response = await api.post(apps(zone), json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def counter(metric: Any) -> float:
    return float(metric._value.get())


async def stored_hash(api: Api, app_id: str) -> str:
    rows = await sql(api, "SELECT client_secret_hash FROM applications WHERE id = :id", id=app_id)
    return str(rows[0][0])


# --- secrets (1, 4, 5) -----------------------------------------------------------------------


async def test_create_issues_secret_and_stores_sts_hash(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone, "billing")
    assert list(app) == ISSUE_KEYS
    assert app["registration_method"] == "managed"
    assert app["expires_at"] is None
    assert app["zone_id"] == zone["id"]
    assert app["updated_at"] == app["created_at"]
    secret = app["client_secret"]
    assert len(secret) == 46
    assert re.fullmatch(r"cs_[A-Za-z0-9_-]{43}", secret)
    stored = await stored_hash(api, app["id"])
    assert HASH_RE.fullmatch(stored)
    assert verify_client_secret_sync(stored, secret)
    rows = await sql(api, "SELECT ref, version FROM secret_store WHERE zone_id = :z", z=zone["id"])
    assert [(r[0], r[1]) for r in rows] == [
        (f"zones/{zone['id']}/applications/{app['id']}/clientSecret", 1)
    ]


async def test_failure_after_custody_put_rolls_back_both(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = await api.zone()
    original = SecretStore.put

    async def failing_put(self: SecretStore, session: Any, ref: str, value: bytes) -> None:
        await original(self, session, ref, value)
        raise RuntimeError("injected fault after the custody put")

    monkeypatch.setattr(SecretStore, "put", failing_put)
    response = await api.post(apps(zone), json={"name": "x", "registration_method": "managed"})
    assert response.status_code == 500
    monkeypatch.undo()
    assert await sql(api, "SELECT id FROM applications WHERE zone_id = :z", z=zone["id"]) == []
    assert await sql(api, "SELECT ref FROM secret_store WHERE zone_id = :z", z=zone["id"]) == []


async def test_secret_metrics_and_corrupted_envelope(api: Api) -> None:
    zone = await api.zone()
    before = counter(SECRET_BACKEND_OPERATIONS)
    app = await create(api, zone)
    assert counter(SECRET_BACKEND_OPERATIONS) == before + 1
    url = f"{apps(zone)}/{app['id']}"
    assert (await api.get(url + "/client-secret")).status_code == 200
    assert (await api.post(url + "/rotate-secret")).status_code == 200
    assert counter(SECRET_BACKEND_OPERATIONS) == before + 3
    errors = counter(SECRET_BACKEND_ERRORS)
    await sql(
        api,
        "UPDATE secret_store SET envelope = overlay(envelope placing '\\x00'::bytea from 90)"
        " WHERE zone_id = :z",
        z=zone["id"],
    )
    response = await api.get(url + "/client-secret")
    assert_envelope(response, 502, "secret_backend_unavailable")
    assert counter(SECRET_BACKEND_ERRORS) == errors + 1
    assert app["client_secret"] not in response.text


# --- reads (6, 7, 15, 16) ----------------------------------------------------------------------


async def test_get_and_list_never_show_secret_and_scope_traits(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone, traits=["team:a"])
    got = (await api.get(f"{apps(zone)}/{app['id']}")).json()
    assert list(got) == READ_KEYS
    assert got["traits"] == ["team:a"]
    listed = (await api.get(apps(zone))).json()
    assert [i["id"] for i in listed["items"]] == [app["id"]]
    assert listed["next_cursor"] is None
    for body in (got, listed):
        assert "client_secret" not in json.dumps(body)
        assert "argon2id" not in json.dumps(body)
    zone_token = (await api.mint("read", zone=zone["id"]))["token"]
    scoped = (await api.get(f"{apps(zone)}/{app['id']}", token=zone_token)).json()
    assert "traits" not in scoped
    scoped_list = (await api.get(apps(zone), token=zone_token)).json()
    assert "traits" not in scoped_list["items"][0]


async def test_unknown_zone_and_cross_zone(api: Api) -> None:
    response = await api.post(
        "/v1/zones/nope/applications", json={"name": "x", "registration_method": "managed"}
    )
    assert_envelope(response, 404, "zone_not_found")
    z1, z2 = await api.zone(), await api.zone()
    app = await create(api, z1)
    assert_envelope(await api.get(f"{apps(z2)}/{app['id']}"), 404, "application_not_found")


async def test_status_filter(api: Api) -> None:
    zone = await api.zone()
    live = await create(api, zone, "live")
    gone = await create(api, zone, "gone")
    assert (await api.delete(f"{apps(zone)}/{gone['id']}")).status_code == 204
    archived = (await api.get(apps(zone) + "?status=archived")).json()["items"]
    assert [a["id"] for a in archived] == [gone["id"]]
    assert archived[0]["archived_at"] is not None
    active = (await api.get(apps(zone))).json()["items"]
    assert [a["id"] for a in active] == [live["id"]]
    for bad in ("everything", "active'%20OR%20'1'='1", ""):
        assert_envelope(await api.get(apps(zone) + f"?status={bad}"), 400, "invalid_query")


# --- reveal, rotate, patch (8, 9, 10, 11, 19) -------------------------------------------------


async def test_reveal_publishes_audit_event_without_secret(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone, "payments")
    url = f"{apps(zone)}/{app['id']}/client-secret"
    response = await api.get(url, headers={"x-request-id": "reveal-req-1"})
    assert response.status_code == 200
    assert response.json() == {"client_secret": app["client_secret"]}
    rows = await sql(
        api,
        "SELECT stream_name, payload_json, request_id FROM event_outbox WHERE request_id = :r",
        r="reveal-req-1",
    )
    assert len(rows) == 1
    stream, payload, _request_id = rows[0]
    assert stream == "caracal.audit.events"
    assert payload["id"] == "reveal-req-1"
    data = json.loads(payload["data"])
    assert data["event_type"] == "credential_revealed"
    assert data["decision"] == "allow"
    assert data["request_id"] == "reveal-req-1"
    assert data["zone_id"] == zone["id"]
    assert data["metadata_json"]["application_id"] == app["id"]
    assert data["metadata_json"]["application_name"] == "payments"
    assert data["metadata_json"]["credential"] == "application_client_secret"
    assert data["metadata_json"]["actor"].startswith("admin:")
    assert "sig" in payload
    assert app["client_secret"] not in json.dumps(payload)
    # not admin-audited: a successful GET
    audit = await sql(
        api, "SELECT id FROM admin_audit_events WHERE request_id = :r", r="reveal-req-1"
    )
    assert audit == []


async def test_reveal_needs_write_and_refuses_head(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone)
    url = f"{apps(zone)}/{app['id']}/client-secret"
    reader = (await api.mint("read"))["token"]
    assert_envelope(await api.get(url, token=reader), 403, "admin_token_read_only")
    head = await api.request("HEAD", url)
    assert head.status_code == 405
    assert head.headers["allow"] == "GET"


async def test_reveal_of_dcr_and_missing_custody(api: Api) -> None:
    zone = await api.zone(dcr_enabled=True)
    dcr = (await api.post(apps(zone) + "/dcr", json={"name": "d"})).json()
    assert_envelope(
        await api.get(f"{apps(zone)}/{dcr['id']}/client-secret"), 404, "application_not_found"
    )
    app = await create(api, zone)
    await sql(api, "DELETE FROM secret_store WHERE zone_id = :z", z=zone["id"])
    response = await api.get(
        f"{apps(zone)}/{app['id']}/client-secret", headers={"x-request-id": "r-miss"}
    )
    assert_envelope(response, 404, "client_secret_not_stored")
    assert await sql(api, "SELECT id FROM event_outbox WHERE request_id = 'r-miss'") == []


async def test_rotate(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone)
    old_hash = await stored_hash(api, app["id"])
    response = await api.post(f"{apps(zone)}/{app['id']}/rotate-secret", json={"ignored": 1})
    assert response.status_code == 200
    rotated = response.json()
    assert list(rotated) == ISSUE_KEYS
    assert rotated["client_secret"] != app["client_secret"]
    assert rotated["updated_at"] > app["updated_at"]
    revealed = (await api.get(f"{apps(zone)}/{app['id']}/client-secret")).json()
    assert revealed["client_secret"] == rotated["client_secret"]
    new_hash = await stored_hash(api, app["id"])
    assert not verify_client_secret_sync(new_hash, app["client_secret"])
    assert verify_client_secret_sync(new_hash, rotated["client_secret"])
    assert old_hash != new_hash
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events"
        " WHERE path = :p AND status_code = 200",
        p=f"{apps(zone)}/{app['id']}/rotate-secret",
    )
    assert audit[0][0] == "applications"
    assert audit[0][1] == app["id"]
    assert audit[0][2]["change_kind"] == "secret_rotation"
    assert audit[0][2]["secret_rotated"] is True
    assert_envelope(
        await api.post(f"{apps(zone)}/nope/rotate-secret"), 404, "application_not_found"
    )


async def test_patch_client_secret(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone)
    chosen = "x" * 44
    response = await api.patch(f"{apps(zone)}/{app['id']}", json={"client_secret": chosen})
    assert response.status_code == 200
    assert chosen not in response.text
    assert list(response.json()) == READ_KEYS
    revealed = (await api.get(f"{apps(zone)}/{app['id']}/client-secret")).json()
    assert revealed["client_secret"] == chosen
    assert verify_client_secret_sync(await stored_hash(api, app["id"]), chosen)
    for bad in ("short", "y" * 31, 12345, None):
        response = await api.patch(f"{apps(zone)}/{app['id']}", json={"client_secret": bad})
        assert_envelope(response, 400, "invalid_application")
    audit = await sql(
        api,
        "SELECT payload_json FROM admin_audit_events WHERE method = 'PATCH' AND path = :p"
        " AND status_code = 200",
        p=f"{apps(zone)}/{app['id']}",
    )
    assert audit[0][0]["change_kind"] == "secret_rotation"
    assert "client_secret" not in audit[0][0]["changed_fields"]


async def test_patch_secret_without_configured_hash(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone)
    await sql(api, "UPDATE applications SET client_secret_hash = NULL WHERE id = :id", id=app["id"])
    response = await api.patch(f"{apps(zone)}/{app['id']}", json={"client_secret": "z" * 40})
    assert_envelope(response, 400, "client_secret_not_configured")


async def test_patch_name_and_traits(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone, "before")
    url = f"{apps(zone)}/{app['id']}"
    response = await api.patch(url, json={"name": "  after  ", "traits": ["t1", "t2"]})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "after"
    assert body["traits"] == ["t1", "t2"]
    assert body["updated_at"] > app["updated_at"]
    assert (await api.get(url)).json()["traits"] == ["t1", "t2"]
    assert_envelope(await api.patch(url, json={}), 400, "no_fields")
    for bad in (
        {"owner": "x"},
        {"registration_method": "dcr"},
        {"zone_id": zone["id"]},
        {"name": None},
        {"traits": None},
    ):
        assert_envelope(await api.patch(url, json=bad), 400, "invalid_application")
    assert_envelope(
        await api.patch(f"{apps(zone)}/nope", json={"name": "n"}), 404, "application_not_found"
    )
    reserved = await api.patch(
        url, json={"name": "caracal.sys/x"}, token=(await api.mint())["token"]
    )
    assert_envelope(reserved, 409, "reserved_namespace")


# --- names (12, 13, 17, 18) -------------------------------------------------------------------


async def test_name_uniqueness(api: Api) -> None:
    zone, other = await api.zone(), await api.zone()
    first = await create(api, zone, "Orders")
    response = await api.post(apps(zone), json={"name": "orders", "registration_method": "managed"})
    assert_envelope(response, 409, "application_name_taken")
    await create(api, other, "ORDERS")
    second = await create(api, zone, "shipping")
    rename = await api.patch(f"{apps(zone)}/{second['id']}", json={"name": "ORDERS"})
    assert_envelope(rename, 409, "application_name_taken")
    # renaming to its own name (any case) is fine
    assert (
        await api.patch(f"{apps(zone)}/{first['id']}", json={"name": "orders"})
    ).status_code == 200
    assert (await api.delete(f"{apps(zone)}/{first['id']}")).status_code == 204
    await create(api, zone, "Orders")


async def test_concurrent_creates_with_one_name(api: Api) -> None:
    zone = await api.zone()
    body = {"name": "racer", "registration_method": "managed"}
    responses = await asyncio.gather(*(api.post(apps(zone), json=body) for _ in range(10)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"] == "application_name_taken"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "registration_method": "dcr"},
        {"name": "x"},
        {"registration_method": "managed"},
        {"name": "", "registration_method": "managed"},
        {"name": "   ", "registration_method": "managed"},
        {"name": "x", "registration_method": "managed", "extra": 1},
        {"name": "x", "registration_method": "managed", "traits": "team"},
        {"name": "x", "registration_method": "managed", "traits": [1, 2]},
        {"name": "x" * 201, "registration_method": "managed"},
        {"name": "x" * 100_000, "registration_method": "managed"},
        {"name": 5, "registration_method": "managed"},
        {"name": "x", "registration_method": "managed", "zone_id": "z"},
    ],
)
async def test_invalid_create_bodies(api: Api, body: dict[str, Any]) -> None:
    zone = await api.zone()
    response = await api.post(apps(zone), json=body)
    detail = assert_envelope(response, 400, "invalid_application")
    assert detail["details"]["issues"]


async def test_array_body_and_reserved_name(api: Api) -> None:
    zone = await api.zone()
    assert_envelope(await api.post(apps(zone), json=[1]), 400, "invalid_application")
    writer = (await api.mint())["token"]
    body = {"name": " Caracal.SYS/ops ", "registration_method": "managed"}
    assert_envelope(await api.post(apps(zone), json=body, token=writer), 409, "reserved_namespace")
    assert (await api.post(apps(zone), json=body)).status_code == 201  # bootstrap may


async def test_delete(api: Api) -> None:
    zone = await api.zone()
    app = await create(api, zone, "temp")
    url = f"{apps(zone)}/{app['id']}"
    response = await api.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    for r in (await api.get(url), await api.delete(url), await api.post(url + "/rotate-secret"),
              await api.get(url + "/client-secret")):  # fmt: skip
        assert_envelope(r, 404, "application_not_found")
    assert await sql(api, "SELECT ref FROM secret_store WHERE zone_id = :z", z=zone["id"]) == []
    await create(api, zone, "temp")


NAMES = [
    "Café résumé naïve",
    "日本語のアプリ",
    "مرحبا بالعالم",
    "👩‍👩‍👧‍👦 family",
    "Z̴̧̛a̸l̷g̶o̵",
    "\u202eevil\u202c",
    "zero\u200bwidth",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈",
    "e\u0301\u0302\u0303",
    "'; DROP TABLE applications; --",
    "Robert'); SELECT 1; --",
]


async def test_unicode_and_sql_looking_names_round_trip(api: Api) -> None:
    zone = await api.zone()
    started = time.monotonic()
    for name in NAMES:
        app = await create(api, zone, name)
        assert app["name"] == name
        got = (await api.get(f"{apps(zone)}/{app['id']}")).json()
        assert got["name"].encode() == name.encode()
    assert time.monotonic() - started < 4.5 * len(NAMES)
    assert len((await api.get(apps(zone))).json()["items"]) == len(NAMES)


# --- traits (14) -------------------------------------------------------------------------------


async def test_traits_over_http(api: Api) -> None:
    zone = await api.zone()
    zone_writer = (await api.mint("write", zone=zone["id"]))["token"]

    async def attempt(traits: list[str], token: str | None = None) -> Any:
        body = {
            "name": f"t-{time.monotonic_ns()}",
            "registration_method": "managed",
            "traits": traits,
        }
        return await api.post(apps(zone), json=body, token=token)

    for bad in (["1x"], ["a b"], ["x" * 129], ["tëam"]):
        assert_envelope(await attempt(bad), 403, "trait_invalid")
    assert_envelope(await attempt(["a", "a"]), 403, "trait_duplicate")
    assert_envelope(await attempt([f"t{i}" for i in range(65)]), 403, "trait_count_exceeded")
    assert (await attempt([f"t{i}" for i in range(64)])).status_code == 201
    for forbidden in (["control:invoke"], ["caracal.sys:x"]):
        assert_envelope(await attempt(forbidden, zone_writer), 403, "trait_forbidden")
    for bad in (
        ["control:max-ttl:30"], ["control:max-ttl:99999"], ["control:scope:control:nope"],
        ["control:expires:soon"], ["control:max-ttl:300", "control:max-ttl:600"],
    ):  # fmt: skip
        assert_envelope(await attempt(bad), 403, "trait_invalid")
    ok = await attempt(["control:max-ttl:300", "control:expires:2030-01-01T00:00:00Z"])
    assert ok.status_code == 201
    app = ok.json()
    patched = await api.patch(
        f"{apps(zone)}/{app['id']}", json={"traits": ["control:invoke"]}, token=zone_writer
    )
    assert_envelope(patched, 403, "trait_forbidden")


# --- DCR (20-24) -------------------------------------------------------------------------------


async def test_dcr(api: Api) -> None:
    disabled = await api.zone()
    assert_envelope(
        await api.post(apps(disabled) + "/dcr", json={"name": "d"}), 403, "dcr_disabled"
    )
    zone = await api.zone(dcr_enabled=True)
    now = datetime.now(UTC)
    response = await api.post(apps(zone) + "/dcr", json={"name": "agent", "expires_in": 600})
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ISSUE_KEYS
    assert body["registration_method"] == "dcr"
    expires = datetime.fromisoformat(body["expires_at"])
    assert abs((expires - now).total_seconds() - 600) < 10
    default = (await api.post(apps(zone) + "/dcr", json={"name": "agent"})).json()
    assert abs((datetime.fromisoformat(default["expires_at"]) - now).total_seconds() - 3600) < 10
    status = (await api.get(f"/v1/zones/{zone['id']}/dcr-status")).json()
    assert status["live_dcr_applications"] == 2
    assert await sql(api, "SELECT ref FROM secret_store WHERE zone_id = :z", z=zone["id"]) == []
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events"
        " WHERE path = :p AND status_code = 201",
        p=apps(zone) + "/dcr",
    )
    assert (audit[0][0], audit[0][1], audit[0][2]["change_kind"]) == (
        "applications",
        "dcr",
        "create",
    )
    assert verify_client_secret_sync(await stored_hash(api, body["id"]), body["client_secret"])


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "d", "expires_in": 3601}',
        b'{"name": "d", "expires_in": 0}',
        b'{"name": "d", "expires_in": -5}',
        b'{"name": "d", "expires_in": 1.5}',
        b'{"name": "d", "expires_in": "600"}',
        b'{"name": "d", "expires_in": true}',
        b'{"name": ""}',
        b'{"expires_in": 60}',
        b'{"name": "d", "traits": []}',
        b'{"name": "d", "registration_method": "dcr"}',
    ],
)
async def test_dcr_body_errors(api: Api, raw: bytes) -> None:
    zone = await api.zone(dcr_enabled=True)
    response = await api.post(
        apps(zone) + "/dcr", content=raw, headers={"content-type": "application/json"}
    )
    assert_envelope(response, 400, "invalid_application")


async def test_dcr_huge_number_is_invalid_json(api: Api) -> None:
    zone = await api.zone(dcr_enabled=True)
    response = await api.post(
        apps(zone) + "/dcr",
        content=b'{"name": "d", "expires_in": 1e400}',
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 400, "invalid_json")


async def test_dcr_unknown_zone(api: Api) -> None:
    assert_envelope(
        await api.post("/v1/zones/nope/applications/dcr", json={"name": "d"}), 404, "zone_not_found"
    )


async def test_dcr_burst_limit(make_api: AppFactory) -> None:
    api = await make_api()
    zone = await api.zone(dcr_enabled=True)
    token = (await api.mint())["token"]
    # Open the Redis connections first: 25 connects at once inside one test process can
    # exceed the limiter's 250 ms budget, and the limiter then fails open (by design).
    await asyncio.gather(*(api.runtime.redis.ping() for _ in range(25)))
    responses = await asyncio.gather(
        *(api.post(apps(zone) + "/dcr", json={"name": "b"}, token=token) for _ in range(25))
    )
    codes = [r.status_code for r in responses]
    assert all(c in (201, 429) for c in codes), codes
    assert 429 in codes
    assert 201 in codes
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.json()["error"] == "dcr_rate_limit_exceeded"
    assert limited.headers["retry-after"] == "1"


async def test_dcr_live_limit(api: Api) -> None:
    zone = await api.zone(dcr_enabled=True)
    await sql(
        api,
        "INSERT INTO applications (id, zone_id, name, registration_method, expires_at, updated_at)"
        " SELECT 'bulk-' || :z || '-' || g, :z, 'bulk', 'dcr', now() + interval '1 hour', now()"
        " FROM generate_series(1, 1000) g",
        z=zone["id"],
    )
    response = await api.post(apps(zone) + "/dcr", json={"name": "one too many"})
    assert_envelope(response, 429, "dcr_limit_exceeded")
    assert response.headers["retry-after"] == "60"


async def test_expiry_sweep(api: Api) -> None:
    zone = await api.zone(dcr_enabled=True)
    old = datetime.now(UTC) - timedelta(hours=25)
    young = datetime.now(UTC) - timedelta(hours=1)
    for app_id, expires in (("sweep-old-" + zone["id"], old), ("sweep-young-" + zone["id"], young)):
        await sql(
            api,
            "INSERT INTO applications (id, zone_id, name, registration_method, expires_at,"
            " updated_at) VALUES (:id, :z, 'x', 'dcr', :e, now())",
            id=app_id, z=zone["id"], e=expires,
        )  # fmt: skip
    # another holder of the lock: the sweep skips its run
    async with api.runtime.engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SWEEP_LOCK_KEY})
        assert await sweep_expired_dcr(api.runtime.engine) is None
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_KEY})
        await holder.commit()
    archived = await sweep_expired_dcr(api.runtime.engine)
    assert archived is not None
    assert archived >= 1
    rows = dict(
        await sql(
            api,
            "SELECT id, archived_at IS NOT NULL FROM applications WHERE zone_id = :z",
            z=zone["id"],
        )
    )
    assert rows == {"sweep-old-" + zone["id"]: True, "sweep-young-" + zone["id"]: False}
