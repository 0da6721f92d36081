"""Zones Z1–Z7 (foundation §16)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from caracal_api.events import outbox
from caracal_api.kit.ids import uuid7
from tests.conftest import BOOTSTRAP_TOKEN, Api, assert_envelope
from tests.integration.foundation.support import (
    LoopTransport,
    execute,
    fetch,
    fetch_one,
    list_all,
    open_api,
    records_of,
    registered,
    scalar,
    unique,
)

ZONE_KEYS = [
    "id",
    "name",
    "slug",
    "dcr_enabled",
    "operator_coauthor_badge",
    "operator_governed",
    "created_by",
    "created_via_operator",
    "updated_by",
    "updated_via_operator",
    "created_at",
    "updated_at",
]
SLUG_RE = re.compile(r"^[a-z0-9-]+$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
HAS_APPS = registered("POST", "/v1/zones/{zoneId}/applications")
HAS_PROVIDERS = registered("POST", "/v1/zones/{zoneId}/providers")
HAS_RESOURCES = registered("POST", "/v1/zones/{zoneId}/resources")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module, with room for 20 concurrent requests."""
    async with open_api(database_dsn, redis_url, db_pool_max=30) as app:
        yield app


def slugify(name: str) -> str:
    """The slug rule of §16.2, written out independently."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-") or "zone"


async def create(api: Api, **body: Any) -> httpx.Response:
    body.setdefault("name", unique("zone"))
    return await api.post("/v1/zones", json=body)


# --- item 55 ---------------------------------------------------------------------------------


# foundation §18 item 55
async def test_create_through_the_admin_client(api: Api) -> None:
    from caracalai_admin import AdminClient

    transport = LoopTransport(api, asyncio.get_running_loop())
    client = AdminClient(
        api_url="http://caracal.test",
        admin_token=BOOTSTRAP_TOKEN,
        http_client=httpx.Client(transport=transport),
        retries=0,
    )
    name = unique("Client Zone")
    zone = await asyncio.to_thread(client.zones.create, {"name": name})
    assert transport.statuses[-1] == 201
    assert list(zone) == ZONE_KEYS
    assert zone["name"] == name
    assert SLUG_RE.fullmatch(zone["slug"])
    assert zone["dcr_enabled"] is False
    assert zone["operator_governed"] is False
    assert zone["operator_coauthor_badge"] is True
    assert TS_RE.fullmatch(zone["created_at"])
    assert TS_RE.fullmatch(zone["updated_at"])
    assert zone["created_at"] <= zone["updated_at"]
    fetched = await asyncio.to_thread(client.zones.get, zone["id"])
    assert fetched == zone
    status = await asyncio.to_thread(client.zones.dcr_status, zone["id"])
    assert status == {"id": zone["id"], "dcr_enabled": False, "live_dcr_applications": 0}
    patched = await asyncio.to_thread(client.zones.patch, zone["id"], {"dcr_enabled": True})
    assert patched["dcr_enabled"] is True
    listed = await asyncio.to_thread(client.zones.list)
    assert zone["id"] in {z["id"] for z in listed}
    assert await asyncio.to_thread(client.zones.delete, zone["id"]) is None
    assert transport.statuses[-1] == 204


# --- item 56 ---------------------------------------------------------------------------------


# foundation §18 item 56
async def test_generated_slugs(api: Api) -> None:
    tag = secrets.token_hex(3)
    names = [
        f"My Zone {tag}",
        f"  Hello,   World!!  {tag} ",
        f"Ünïcödé Zone {tag}",
        f"x'; DROP TABLE zones; -- {tag}",
        f"---{tag}___",
        f"UPPER case {tag}",
    ]
    for name in names:
        response = await create(api, name=name)
        assert response.status_code == 201, response.text
        zone = response.json()
        assert zone["slug"] == slugify(name), name
        assert zone["name"] == name.strip()
    assert await scalar(api, "SELECT count(*) FROM zones") > 0  # the table survived
    # The same name twice: base, then base-2.
    first = (await create(api, name=f"Twice {tag}")).json()
    second = (await create(api, name=f"Twice {tag}")).json()
    assert (first["slug"], second["slug"]) == (f"twice-{tag}", f"twice-{tag}-2")
    # A name with nothing sluggable falls back to `zone`.
    fallback = (await create(api, name="日本語")).json()
    assert re.fullmatch(r"zone(-\d{1,3}|-[0-9a-f]{32})?", fallback["slug"])


# foundation §18 item 56
async def test_concurrent_creates_with_one_name(api: Api) -> None:
    name = unique("Crowded")
    responses = await asyncio.gather(*(create(api, name=name) for _ in range(20)))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    slugs = {r.json()["slug"] for r in responses}
    base = slugify(name)
    assert slugs == {base, *(f"{base}-{n}" for n in range(2, 21))}


# --- item 57 ---------------------------------------------------------------------------------


# foundation §18 item 57
async def test_explicit_slugs_and_conflicts(api: Api) -> None:
    slug = f"explicit-{secrets.token_hex(4)}"
    response = await create(api, name="Explicit", slug=slug)
    assert response.status_code == 201, response.text
    zone = response.json()
    assert zone["slug"] == slug
    assert_envelope(await create(api, slug=slug), 409, "zone_slug_conflict")
    other = (await create(api)).json()
    response = await api.patch(f"/v1/zones/{other['id']}", json={"slug": slug})
    assert_envelope(response, 409, "zone_slug_conflict")
    # An archived zone keeps its slug.
    assert (await api.delete(f"/v1/zones/{zone['id']}")).status_code == 204
    assert_envelope(await create(api, slug=slug), 409, "zone_slug_conflict")
    response = await api.patch(f"/v1/zones/{other['id']}", json={"slug": slug})
    assert_envelope(response, 409, "zone_slug_conflict")
    # A generated slug skips it too.
    generated = (await create(api, name=slug)).json()
    assert generated["slug"] == f"{slug}-2"
    # 300 characters is the cap.
    long_slug = "a" * 290 + secrets.token_hex(5)
    assert (await create(api, slug=long_slug)).status_code == 201


# --- item 58 ---------------------------------------------------------------------------------

BAD_SLUGS = ["Not A Slug", "UPPER", "under_score", "dots.not.allowed", "", "ｓｌｕｇ", "a" * 301]


# foundation §18 item 58
async def test_invalid_slugs(api: Api) -> None:
    zone = (await create(api)).json()
    for slug in [*BAD_SLUGS, 5, None, ["a"]]:
        body = assert_envelope(await create(api, slug=slug), 400, "invalid_zone")
        assert body["details"]["issues"], slug
        response = await api.patch(f"/v1/zones/{zone['id']}", json={"slug": slug})
        assert_envelope(response, 400, "invalid_zone")


# --- item 59 ---------------------------------------------------------------------------------


# foundation §18 item 59
async def test_invalid_names(api: Api) -> None:
    for body in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "n" * 121},
        {"name": "n" * 10_000},
        {"name": 5},
        {"name": None},
        {"name": ["a"]},
        {"name": {"a": 1}},
        {"name": True},
    ):
        response = await api.post("/v1/zones", json=body)
        err = assert_envelope(response, 400, "invalid_zone")
        assert err["details"]["issues"][0]["path"][0] == "name", body
    limit = "n" * 112 + secrets.token_hex(4)
    response = await create(api, name=limit)
    assert response.status_code == 201
    assert response.json()["name"] == limit
    padded = f"  \t{unique('Trimmed')}\n "
    response = await create(api, name=padded)
    assert response.json()["name"] == padded.strip()
    # 120 characters after trimming is fine even with surrounding spaces.
    response = await create(api, name=f"  {limit}  ")
    assert response.status_code == 201


# --- item 60 ---------------------------------------------------------------------------------


# foundation §18 item 60
async def test_unknown_and_archived_zones(api: Api) -> None:
    zone = (await create(api)).json()
    deleted = await api.delete(f"/v1/zones/{zone['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for zone_id in ("no-such-zone", zone["id"]):
        base = f"/v1/zones/{zone_id}"
        assert_envelope(await api.get(base), 404, "zone_not_found")
        assert_envelope(await api.get(f"{base}/dcr-status"), 404, "zone_not_found")
        assert_envelope(await api.patch(base, json={"name": "x"}), 404, "zone_not_found")
        assert_envelope(await api.delete(base), 404, "zone_not_found")
        response = await api.post(
            "/v1/admin-tokens",
            json={"name": "child", "scope": "zone", "zone_id": zone_id, "capability": "read"},
        )
        assert_envelope(response, 404, "zone_not_found")
    assert zone["id"] not in {z["id"] for z in await list_all(api, "/v1/zones")}
    # Malformed ids never reach a lookup.
    assert_envelope(await api.get("/v1/zones/a%2Fb"), 400, "invalid_params")
    assert_envelope(await api.delete("/v1/zones/" + "x" * 129), 400, "invalid_params")


# foundation §18 item 60
@pytest.mark.skipif(not HAS_APPS, reason="applications routes not served")
async def test_child_create_in_archived_zone(api: Api) -> None:
    zone = (await create(api)).json()
    assert (await api.delete(f"/v1/zones/{zone['id']}")).status_code == 204
    response = await api.post(
        f"/v1/zones/{zone['id']}/applications",
        json={"name": "late", "registration_method": "managed"},
    )
    assert_envelope(response, 404, "zone_not_found")


# --- item 61 ---------------------------------------------------------------------------------


# foundation §18 item 61
async def test_patch_rules(api: Api) -> None:
    zone = (await create(api)).json()
    path = f"/v1/zones/{zone['id']}"
    renamed = (await api.patch(path, json={"name": "  Renamed zone  "})).json()
    assert renamed["name"] == "Renamed zone"
    assert renamed["slug"] == zone["slug"]
    assert renamed["updated_at"] > zone["updated_at"]
    assert renamed["created_at"] == zone["created_at"]
    new_slug = f"reslugged-{secrets.token_hex(4)}"
    reslugged = (await api.patch(path, json={"slug": new_slug})).json()
    assert (reslugged["slug"], reslugged["name"]) == (new_slug, "Renamed zone")
    assert_envelope(await api.patch(path, json={}), 400, "no_fields")
    for body in ({"owner_account_id": "x"}, {"id": "x"}, {"archived_at": None}, {"bogus": 1}):
        assert_envelope(await api.patch(path, json=body), 400, "invalid_zone")
    flags = await api.patch(path, json={"operator_governed": True})
    assert flags.json()["operator_governed"] is True
    fetched = (await api.get(path)).json()
    assert fetched["operator_governed"] is True
    assert list(fetched) == ZONE_KEYS
    stored = await fetch_one(
        api, "SELECT operator_governed FROM zones WHERE id = :id", id=zone["id"]
    )
    assert stored is not None
    assert stored.operator_governed is True


# --- item 62 ---------------------------------------------------------------------------------


# foundation §18 item 62
async def test_dcr_shutdown_needs_disable(api: Api) -> None:
    zone = (await create(api, dcr_enabled=True)).json()
    path = f"/v1/zones/{zone['id']}"
    responses = []
    for body in (
        {"dcr_shutdown": "keep_live"},
        {"dcr_shutdown": "revoke_live", "dcr_enabled": True},
        {"dcr_shutdown": "keep_live", "name": "also renamed"},
    ):
        response = await api.patch(path, json=body)
        assert_envelope(response, 400, "dcr_shutdown_not_applicable")
        responses.append(response)
    for body in ({"dcr_shutdown": "shred"}, {"dcr_shutdown": "shred", "dcr_enabled": False}):
        assert_envelope(await api.patch(path, json=body), 400, "invalid_zone")
    after = (await api.get(path)).json()
    assert after == zone
    success = await fetch(
        api,
        "SELECT id FROM admin_audit_events WHERE zone_id = :z AND status_code < 400",
        z=zone["id"],
    )
    assert len(success) == 1  # only the create
    for response in responses:
        rows = await records_of(api, response.headers["x-request-id"])
        assert all(r.status_code == 400 for r in rows)


# --- item 63 ---------------------------------------------------------------------------------


class DcrWorld:
    """Live DCR applications with authority records, sessions and edges, inserted by SQL."""

    def __init__(self, zone_id: str) -> None:
        self.zone_id = zone_id
        self.ids: dict[str, str] = {}

    def id(self, key: str) -> str:
        return self.ids.setdefault(key, uuid7())

    async def seed(self, api: Api) -> None:
        z = self.zone_id
        now = datetime.now(UTC)
        apps = [
            ("app1", "dcr", now + timedelta(hours=1)),
            ("app2", "dcr", now + timedelta(hours=1)),
            ("expired", "dcr", now - timedelta(minutes=1)),
            ("managed", "managed", None),
        ]
        for key, method, expires in apps:
            await execute(
                api,
                "INSERT INTO applications (id, zone_id, name, registration_method, expires_at,"
                " updated_at) VALUES (:id, :z, :name, :m, :exp, now())",
                id=self.id(key),
                z=z,
                name=key,
                m=method,
                exp=expires,
            )
        records = [
            ("rec1", "application", "app1", None, "active"),
            ("rec1child", "user", "someone", "rec1", "active"),
            ("rec1grandchild", "user", "someone", "rec1child", "active"),
            ("rec2", "application", "app2", None, "active"),
            ("rec_old", "application", "app1", None, "revoked"),
            ("rec_managed", "application", "managed", None, "active"),
        ]
        for key, kind, subject, parent, status in records:
            await execute(
                api,
                "INSERT INTO authority_records (id, zone_id, session_type, subject_id, parent_id,"
                " status, expires_at, authenticated_at, revoked_at, revoked_reason)"
                " VALUES (:id, :z, :kind, :subject, :parent, :status, now() + interval '1 hour',"
                " now(), CASE WHEN :status = 'revoked' THEN now() END,"
                " CASE WHEN :status = 'revoked' THEN 'earlier' END)",
                id=self.id(key),
                z=z,
                kind=kind,
                subject=self.ids.get(subject, subject),
                parent=self.ids.get(parent) if parent else None,
                status=status,
            )
        sessions = [
            ("s1", "app1", None, "rec1", "active"),
            ("s1child", "app1", "s1", "rec1", "suspended"),
            ("s2", "app2", None, "rec2", "active"),
            ("s_done", "app1", None, "rec_old", "terminated"),
            ("s_managed", "managed", None, "rec_managed", "active"),
            ("s_managed2", "managed", None, "rec_managed", "active"),
        ]
        for key, app, parent, record, status in sessions:
            await execute(
                api,
                "INSERT INTO sessions (id, zone_id, application_id, parent_id,"
                " subject_authority_record_id, status, terminated_at)"
                " VALUES (:id, :z, :app, :parent, :rec, :status,"
                " CASE WHEN :status = 'terminated' THEN now() END)",
                id=self.id(key),
                z=z,
                app=self.ids[app],
                parent=self.ids.get(parent) if parent else None,
                rec=self.ids[record],
                status=status,
            )
        edges = [
            ("e1", "s1", "s_managed", "app1", "managed", "active"),
            ("e2", "s_managed", "s2", "managed", "app2", "active"),
            ("e_unrelated", "s_managed", "s_managed2", "managed", "managed", "active"),
            ("e_old", "s1", "s_managed2", "app1", "managed", "revoked"),
        ]
        for key, source, target, issuer, receiver, status in edges:
            await execute(
                api,
                "INSERT INTO delegation_edges (id, zone_id, source_session_id, target_session_id,"
                " issuer_application_id, receiver_application_id, status, expires_at, revoked_at)"
                " VALUES (:id, :z, :src, :dst, :iss, :rcv, :status, now() + interval '1 hour',"
                " CASE WHEN :status = 'revoked' THEN now() END)",
                id=self.id(key),
                z=z,
                src=self.ids[source],
                dst=self.ids[target],
                iss=self.ids[issuer],
                rcv=self.ids[receiver],
                status=status,
            )

    async def state(self, api: Api) -> dict[str, Any]:
        """Status of every seeded row, keyed by its name."""
        out: dict[str, Any] = {}
        by_id = {v: k for k, v in self.ids.items()}
        queries = {
            "applications": "SELECT id, archived_at IS NOT NULL AS s FROM applications",
            "authority_records": "SELECT id, status || ':' || coalesce(revoked_reason, '') AS s"
            " FROM authority_records",
            "sessions": "SELECT id, status AS s FROM sessions",
            "delegation_edges": "SELECT id, status || ':' || edge_version AS s"
            " FROM delegation_edges",
        }
        for sql in queries.values():
            for row in await fetch(api, f"{sql} WHERE zone_id = :z", z=self.zone_id):
                out[by_id[row.id]] = row.s
        return out


async def _dcr_zone(api: Api) -> tuple[dict[str, Any], DcrWorld]:
    zone = (await create(api, dcr_enabled=True)).json()
    world = DcrWorld(zone["id"])
    await world.seed(api)
    return zone, world


async def _outbox_of(api: Api, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await fetch(
        api,
        "SELECT stream_name, payload_json FROM event_outbox WHERE request_id = :r",
        r=request_id,
    )
    return [(r.stream_name, r.payload_json) for r in rows]


async def _shutdown_record(api: Api, request_id: str) -> Any:
    rows = [r for r in await records_of(api, request_id) if r.action.startswith("DCR shutdown")]
    assert len(rows) == 1
    return rows[0]


# foundation §18 item 63
async def test_disable_dcr_with_live_apps_requires_a_mode(api: Api) -> None:
    zone, world = await _dcr_zone(api)
    before = await world.state(api)
    status = (await api.get(f"/v1/zones/{zone['id']}/dcr-status")).json()
    assert status == {"id": zone["id"], "dcr_enabled": True, "live_dcr_applications": 2}
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"dcr_enabled": False})
    body = assert_envelope(response, 409, "dcr_shutdown_required")
    assert body["details"]["live_dcr_applications"] == 2
    assert (await api.get(f"/v1/zones/{zone['id']}")).json() == zone
    assert await world.state(api) == before
    assert await _outbox_of(api, response.headers["x-request-id"]) == []


# foundation §18 item 63
async def test_keep_live(api: Api) -> None:
    zone, world = await _dcr_zone(api)
    before = await world.state(api)
    response = await api.patch(
        f"/v1/zones/{zone['id']}", json={"dcr_enabled": False, "dcr_shutdown": "keep_live"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["dcr_enabled"] is False
    assert await world.state(api) == before
    request_id = response.headers["x-request-id"]
    assert await _outbox_of(api, request_id) == []
    record = await _shutdown_record(api, request_id)
    assert record.action == "DCR shutdown keep_live"
    assert record.payload_json == {
        "dcr_registration_disabled": True,
        "dcr_shutdown_mode": "keep_live",
        "live_dcr_applications": 2,
        "revoked_applications": 0,
        "revoked_authority_records": 0,
        "terminated_sessions": 0,
        "revoked_delegations": 0,
    }
    status = (await api.get(f"/v1/zones/{zone['id']}/dcr-status")).json()
    assert status == {"id": zone["id"], "dcr_enabled": False, "live_dcr_applications": 2}
    # DCR already off: sending a mode still reaches the apps kept alive.
    response = await api.patch(
        f"/v1/zones/{zone['id']}", json={"dcr_enabled": False, "dcr_shutdown": "revoke_live"}
    )
    assert response.status_code == 200, response.text
    state = await world.state(api)
    assert (state["app1"], state["app2"], state["s1"]) == (True, True, "terminated")
    record = await _shutdown_record(api, response.headers["x-request-id"])
    assert record.payload_json["revoked_applications"] == 2


# foundation §18 item 63
async def test_revoke_live_cascade(api: Api) -> None:
    zone, world = await _dcr_zone(api)
    response = await api.patch(
        f"/v1/zones/{zone['id']}",
        json={"dcr_enabled": False, "dcr_shutdown": "revoke_live"},
        headers={"x-caracal-authorized-by": "ops@example.test"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["dcr_enabled"] is False
    state = await world.state(api)
    assert state == {
        "app1": True,
        "app2": True,
        "expired": False,
        "managed": False,
        "rec1": "revoked:dcr_shutdown",
        "rec1child": "revoked:dcr_shutdown",
        "rec1grandchild": "revoked:dcr_shutdown",
        "rec2": "revoked:dcr_shutdown",
        "rec_old": "revoked:earlier",
        "rec_managed": "active:",
        "s1": "terminated",
        "s1child": "terminated",
        "s2": "terminated",
        "s_done": "terminated",
        "s_managed": "active",
        "s_managed2": "active",
        "e1": "revoked:1",
        "e2": "revoked:1",
        "e_unrelated": "active:0",
        "e_old": "revoked:0",
    }
    archived = await fetch_one(
        api, "SELECT updated_by FROM applications WHERE id = :id", id=world.ids["app1"]
    )
    assert archived is not None
    assert archived.updated_by == "ops@example.test"
    ids = world.ids
    z = zone["id"]
    request_id = response.headers["x-request-id"]
    events = await _outbox_of(api, request_id)
    expected = [
        *(
            (
                "caracal.sessions.revoke",
                {"zone_id": z, "session_id": ids[r], "reason": "dcr_shutdown"},
            )
            for r in ("rec1", "rec1child", "rec1grandchild", "rec2")
        ),
        *(
            (
                "caracal.agents.lifecycle",
                {
                    "event": "terminate",
                    "zone_id": z,
                    "agent_session_id": ids[s],
                    "parent_id": ids[p] if p else None,
                    "reason": "dcr_shutdown",
                },
            )
            for s, p in (("s1", None), ("s1child", "s1"), ("s2", None))
        ),
        *(
            (
                "caracal.sessions.revoke",
                {
                    "zone_id": z,
                    "session_id": ids[r],
                    "agent_session_id": ids[s],
                    "reason": "dcr_shutdown",
                },
            )
            for s, r in (("s1", "rec1"), ("s1child", "rec1"), ("s2", "rec2"))
        ),
        *(
            (
                "caracal.sessions.revoke",
                {"zone_id": z, "delegation_edge_id": ids[e], "reason": "dcr_shutdown"},
            )
            for e in ("e1", "e2")
        ),
    ]

    def key(event: tuple[str, dict[str, Any]]) -> str:
        return json.dumps(event, sort_keys=True)

    assert sorted(events, key=key) == sorted(expected, key=key)
    record = await _shutdown_record(api, request_id)
    assert (record.method, record.path, record.status_code) == ("PATCH", f"/v1/zones/{z}", 200)
    assert (record.entity_type, record.entity_id, record.zone_id) == ("zones", z, z)
    assert record.actor_id is not None
    assert record.payload_json == {
        "dcr_registration_disabled": True,
        "dcr_shutdown_mode": "revoke_live",
        "live_dcr_applications": 2,
        "revoked_applications": 2,
        "revoked_authority_records": 4,
        "terminated_sessions": 3,
        "revoked_delegations": 2,
    }
    generic = [r for r in await records_of(api, request_id) if r.id != record.id]
    assert len(generic) == 1
    assert generic[0].payload_json["change_kind"] == "update"
    assert generic[0].payload_json["changed_fields"] == ["dcr_enabled", "dcr_shutdown"]
    status = (await api.get(f"/v1/zones/{z}/dcr-status")).json()
    assert status["live_dcr_applications"] == 0


# foundation §18 item 63: the cascade, its events and its records are one transaction
async def test_revoke_live_is_atomic(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    zone, world = await _dcr_zone(api)
    before = await world.state(api)

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(outbox, "record_many", broken)
    response = await api.patch(
        f"/v1/zones/{zone['id']}", json={"dcr_enabled": False, "dcr_shutdown": "revoke_live"}
    )
    monkeypatch.undo()
    assert_envelope(response, 500, "internal_error")
    assert await world.state(api) == before
    assert (await api.get(f"/v1/zones/{zone['id']}")).json()["dcr_enabled"] is True
    rows = await records_of(api, response.headers["x-request-id"])
    assert all(r.status_code == 500 for r in rows)


# foundation §18 item 63: disabling with nothing live still leaves a shutdown record
async def test_disable_without_live_apps(api: Api) -> None:
    zone = (await create(api, dcr_enabled=True)).json()
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"dcr_enabled": False})
    assert response.status_code == 200, response.text
    record = await _shutdown_record(api, response.headers["x-request-id"])
    assert record.action == "DCR shutdown no_live"
    assert record.payload_json["live_dcr_applications"] == 0
    # Already disabled and no mode sent: no shutdown record.
    again = await api.patch(f"/v1/zones/{zone['id']}", json={"dcr_enabled": False})
    assert again.status_code == 200
    rows = await records_of(api, again.headers["x-request-id"])
    assert [r.action for r in rows] == [f"PATCH /v1/zones/{zone['id']}"]


# --- item 64 ---------------------------------------------------------------------------------


# foundation §18 item 64
async def test_list_paging_and_reserved_zones(api: Api) -> None:
    created = [(await create(api)).json()["id"] for _ in range(5)]
    reserved = (await create(api, name=f"caracal.sys/{secrets.token_hex(4)}")).json()
    reserved_slug = (await create(api, slug=f"caracal-sys-{secrets.token_hex(4)}")).json()
    newest_first = list(reversed(created))
    seen: list[str] = []
    cursor = None
    while not set(created) <= set(seen):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await api.get("/v1/zones", params=params)).json()
        assert len(body["items"]) <= 2
        seen.extend(z["id"] for z in body["items"])
        cursor = body["next_cursor"]
        assert cursor is not None or set(created) <= set(seen)
    assert len(seen) == len(set(seen))
    assert [z for z in seen if z in created] == newest_first
    everything = [z["id"] for z in await list_all(api, "/v1/zones")]
    assert len(everything) == len(set(everything))
    assert set(created) <= set(everything)
    assert reserved["id"] not in everything
    assert reserved_slug["id"] not in everything
    # Reserved zones stay readable by id.
    assert (await api.get(f"/v1/zones/{reserved['id']}")).status_code == 200


# --- item 65 ---------------------------------------------------------------------------------


async def _seed_overview(api: Api, zone_id: str) -> None:
    now = datetime.now(UTC)
    for name, expires in (
        ("plain", None),
        ("expired", now - timedelta(hours=1)),
        ("soon", now + timedelta(days=2)),
        ("later", now + timedelta(days=30)),
    ):
        await execute(
            api,
            "INSERT INTO applications (id, zone_id, name, registration_method, expires_at,"
            " updated_at) VALUES (:id, :z, :n, 'managed', :e, now())",
            id=uuid7(),
            z=zone_id,
            n=name,
            e=expires,
        )
    await execute(
        api,
        "INSERT INTO applications (id, zone_id, name, registration_method, archived_at,"
        " updated_at) VALUES (:id, :z, 'gone', 'managed', now(), now())",
        id=uuid7(),
        z=zone_id,
    )
    provider = uuid7()
    await execute(
        api,
        "INSERT INTO providers (id, zone_id, name, identifier, provider_kind)"
        " VALUES (:id, :z, 'p', 'provider://p', 'none')",
        id=provider,
        z=zone_id,
    )
    for n, enforcement in enumerate(("enforced", "transport_uniform", "transport_uniform")):
        await execute(
            api,
            "INSERT INTO resources (id, zone_id, name, identifier, upstream_url,"
            " credential_provider_id, scopes, operation_enforcement)"
            " VALUES (:id, :z, :n, :ident, 'https://up.example.test', :p, ARRAY['s'], :e)",
            id=uuid7(),
            z=zone_id,
            n=f"r{n}",
            ident=f"resource://r{n}",
            p=provider,
            e=enforcement,
        )
    active_set, idle_set, version = uuid7(), uuid7(), uuid7()
    for set_id, name in ((active_set, "beta"), (idle_set, "alpha")):
        await execute(
            api,
            "INSERT INTO policy_sets (id, zone_id, name, created_by) VALUES (:id, :z, :n, 'test')",
            id=set_id,
            z=zone_id,
            n=name,
        )
    await execute(
        api,
        "INSERT INTO policy_set_versions (id, policy_set_id, version, manifest_json,"
        " manifest_sha256, schema_version, created_by)"
        " VALUES (:id, :s, 1, '[]'::jsonb, 'x', '2026-05-20', 'test')",
        id=version,
        s=active_set,
    )
    await execute(
        api,
        "INSERT INTO policy_set_bindings (zone_id, policy_set_id, active_version_id)"
        " VALUES (:z, :s, :v), (:z, :idle, NULL)",
        z=zone_id,
        s=active_set,
        v=version,
        idle=idle_set,
    )
    hour = timedelta(hours=1)
    for status, expires in (("active", hour), ("active", -hour), ("revoked", hour)):
        await execute(
            api,
            "INSERT INTO authority_records (id, zone_id, session_type, status, expires_at,"
            " authenticated_at) VALUES (:id, :z, 'application', :s,"
            " now() + :e, now())",
            id=uuid7(),
            z=zone_id,
            s=status,
            e=expires,
        )
    decisions = ["allow"] * 7 + ["deny"] * 4 + ["partial"]
    for n, decision in enumerate(decisions):
        await execute(
            api,
            "INSERT INTO audit_events (id, zone_id, event_type, request_id, decision,"
            " metadata_json, occurred_at) VALUES (:id, :z, 'token_exchange', :r, :d,"
            " CAST(:m AS jsonb), now() - make_interval(mins => :n))",
            id=f"ev-{zone_id}-{n:02d}",
            z=zone_id,
            r=f"req-{n}",
            d=decision,
            m='{"token": "tk-secret", "nested": {"client_secret": "cs-secret", "keep": 1},'
            ' "list": [{"password": "pw"}]}',
            n=n,
        )
    await execute(
        api,
        "INSERT INTO audit_events (id, zone_id, event_type, decision, occurred_at)"
        " VALUES (:id, :z, 'token_exchange', 'allow', now() - interval '25 hours')",
        id=f"ev-{zone_id}-old",
        z=zone_id,
    )


# foundation §18 item 65
async def test_overview_counts(api: Api) -> None:
    zone = (await create(api)).json()
    await _seed_overview(api, zone["id"])
    response = await api.get(f"/v1/zones/{zone['id']}/overview")
    assert response.status_code == 200, response.text
    body = response.json()
    assert TS_RE.fullmatch(body.pop("generated_at"))
    recent = body.pop("recent_events")
    assert body == {
        "zone_id": zone["id"],
        "applications": {"total": 4, "expired": 1, "expiring_soon": 1},
        "resources": {"total": 3, "unenforced": 2},
        "providers": {"total": 1},
        "policy_sets": {"total": 2, "enforcing": 1, "active_name": "beta"},
        "sessions": {"active": 1},
        "decisions_24h": {"allowed": 7, "denied": 4},
    }
    assert [e["id"] for e in recent] == [f"ev-{zone['id']}-{n:02d}" for n in range(10)]
    assert list(recent[0]) == [
        "id",
        "event_type",
        "request_id",
        "decision",
        "metadata_json",
        "occurred_at",
    ]
    assert recent[0]["metadata_json"] == {
        "token": "[redacted]",
        "nested": {"client_secret": "[redacted]", "keep": 1},
        "list": [{"password": "[redacted]"}],
    }
    assert "secret" not in response.text.replace("client_secret", "")


# foundation §18 item 65: an unknown zone is all zeros
async def test_overview_unknown_zone(api: Api) -> None:
    body = (await api.get("/v1/zones/never-was-a-zone/overview")).json()
    body.pop("generated_at")
    assert body == {
        "zone_id": "never-was-a-zone",
        "applications": {"total": 0, "expired": 0, "expiring_soon": 0},
        "resources": {"total": 0, "unenforced": 0},
        "providers": {"total": 0},
        "policy_sets": {"total": 0, "enforcing": 0, "active_name": None},
        "sessions": {"active": 0},
        "decisions_24h": {"allowed": 0, "denied": 0},
        "recent_events": [],
    }


# foundation §18 item 65 (through the object routes)
@pytest.mark.skipif(
    not (HAS_APPS and HAS_PROVIDERS and HAS_RESOURCES), reason="object routes not served"
)
async def test_overview_after_creating_one_of_each(api: Api) -> None:
    zone = (await create(api)).json()
    base = f"/v1/zones/{zone['id']}"
    app = await api.post(
        f"{base}/applications", json={"name": "one", "registration_method": "managed"}
    )
    assert app.status_code == 201, app.text
    provider = await api.post(f"{base}/providers", json={"name": "one", "kind": "none"})
    assert provider.status_code == 201, provider.text
    resource = await api.post(
        f"{base}/resources",
        json={
            "name": "one",
            "scopes": ["read"],
            "upstream_url": "https://upstream.example.test",
            "credential_provider_id": provider.json()["id"],
        },
    )
    assert resource.status_code == 201, resource.text
    body = (await api.get(f"{base}/overview")).json()
    assert body["applications"]["total"] == 1
    assert body["providers"] == {"total": 1}
    assert body["resources"]["total"] == 1
    assert body["policy_sets"] == {"total": 0, "enforcing": 0, "active_name": None}
    assert body["recent_events"] == []
