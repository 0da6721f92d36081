"""Grants G1–G4 through the HTTP API (objects.md §7, items 48–53)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Api, assert_envelope
from tests.integration.objects.conftest import sql

LIST_KEYS = [
    "id", "zone_id", "application_id", "user_id", "resource_id", "provider_id",
    "application_name", "resource_name", "provider_name", "provider_kind", "scopes", "status",
    "created_by", "created_via_operator", "updated_by", "updated_via_operator", "created_at",
]  # fmt: skip
DETAIL_KEYS = [
    "id", "zone_id", "application_id", "user_id", "resource_id", "scopes", "status",
    "created_by", "created_via_operator", "updated_by", "updated_via_operator", "created_at",
]  # fmt: skip
CREATED_KEYS = [
    "id", "zone_id", "application_id", "user_id", "resource_id", "scopes", "status",
    "created_by", "created_via_operator", "created_at",
]  # fmt: skip


class World:
    def __init__(self, api: Api, zone: dict[str, Any]) -> None:
        self.api = api
        self.zone = zone
        self.base = f"/v1/zones/{zone['id']}/grants"

    async def app(self, name: str = "app") -> str:
        r = await self.api.post(
            f"/v1/zones/{self.zone['id']}/applications",
            json={"name": name, "registration_method": "managed"},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def provider(self, name: str = "prov") -> str:
        r = await self.api.post(
            f"/v1/zones/{self.zone['id']}/providers",
            json={"name": name, "kind": "bearer_token", "config_json": {"bearer_token": "t"}},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def resource(self, provider_id: str, name: str = "res") -> str:
        r = await self.api.post(
            f"/v1/zones/{self.zone['id']}/resources",
            json={
                "name": name,
                "scopes": ["docs:read", "docs:write", "docs:admin"],
                "credential_provider_id": provider_id,
                "upstream_url": "https://docs.example.test",
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def grant(self, **body: Any) -> Any:
        r = await self.api.post(self.base, json=body)
        assert r.status_code == 201, r.text
        return r.json()


async def world(api: Api) -> World:
    return World(api, await api.zone())


async def test_create_get_list_enriched(api: Api) -> None:
    w = await world(api)
    app, prov = await w.app("Billing"), await w.provider("Docs Token")
    res = await w.resource(prov, "Docs")
    grant = await w.grant(
        application_id=app, user_id="user-1", resource_id=res, scopes=["docs:read"]
    )
    assert list(grant) == CREATED_KEYS
    assert grant["status"] == "active"
    got = (await api.get(f"{w.base}/{grant['id']}")).json()
    assert list(got) == DETAIL_KEYS
    items = (await api.get(w.base)).json()["items"]
    assert list(items[0]) == LIST_KEYS
    assert items[0]["application_name"] == "Billing"
    assert items[0]["resource_name"] == "Docs"
    assert items[0]["provider_name"] == "Docs Token"
    assert items[0]["provider_kind"] == "bearer_token"
    assert items[0]["provider_id"] == prov


async def test_filters(api: Api) -> None:
    w = await world(api)
    a1, a2 = await w.app("a1"), await w.app("a2")
    p1, p2 = await w.provider("p1"), await w.provider("p2")
    r1, r2 = await w.resource(p1, "r1"), await w.resource(p2, "r2")
    g1 = await w.grant(application_id=a1, user_id="alice", resource_id=r1, scopes=["docs:read"])
    g2 = await w.grant(
        application_id=a2, user_id="bob", resource_id=r2, scopes=["docs:read", "docs:write"]
    )
    g3 = await w.grant(application_id=a1, user_id="bob", resource_id=r1, scopes=["docs:write"])

    async def ids(query: str) -> set[str]:
        r = await api.get(f"{w.base}?{query}")
        assert r.status_code == 200, r.text
        return {g["id"] for g in r.json()["items"]}

    assert await ids("user_id=bob") == {g2["id"], g3["id"]}
    assert await ids("subject_id=alice") == {g1["id"]}
    assert await ids("user_id=bob&subject_id=alice") == {g2["id"], g3["id"]}
    assert await ids(f"application_id={a1}") == {g1["id"], g3["id"]}
    assert await ids(f"resource_id={r2}") == {g2["id"]}
    assert await ids(f"provider_id={p1}") == {g1["id"], g3["id"]}
    assert await ids("scopes=docs:write") == {g2["id"], g3["id"]}
    assert await ids("scopes=docs:read,docs:write") == {g2["id"]}
    assert await ids("scopes=docs:read&scopes=docs:write") == {g2["id"]}
    assert await ids("user_id=nobody") == set()
    assert await ids("user_id=%27%20OR%20%271%27%3D%271") == set()
    for bad in ("scopes=BAD%20SCOPE", "limit=0", "status=", "user_id=" + "x" * 257):
        assert_envelope(await api.get(f"{w.base}?{bad}"), 400, "invalid_query")


async def test_create_failures(api: Api) -> None:
    w = await world(api)
    app, res = await w.app(), await w.resource(await w.provider())
    post = w.base

    async def attempt(**body: Any) -> Any:
        return await api.post(
            post,
            json={
                "application_id": app,
                "user_id": "u",
                "resource_id": res,
                "scopes": ["docs:read"],
                **body,
            },
        )

    assert_envelope(
        await attempt(scopes=["docs:read", "docs:delete"]), 403, "grant_scopes_exceed_resource"
    )
    assert_envelope(await attempt(application_id="missing"), 404, "application_not_found")
    assert_envelope(await attempt(resource_id="missing"), 404, "resource_not_found")
    other = await world(api)
    foreign_app = await other.app()
    assert_envelope(await attempt(application_id=foreign_app), 404, "application_not_found")
    archived = await w.app("old")
    await api.delete(f"/v1/zones/{w.zone['id']}/applications/{archived}")
    assert_envelope(await attempt(application_id=archived), 404, "application_not_found")
    await api.delete(f"/v1/zones/{w.zone['id']}/resources/{res}")
    assert_envelope(await attempt(), 404, "resource_not_found")
    assert_envelope(
        await api.post(
            "/v1/zones/nope/grants",
            json={"application_id": app, "user_id": "u", "resource_id": res, "scopes": ["a"]},
        ),
        404,
        "zone_not_found",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"scopes": None},
        {"scopes": []},
        {"scopes": ["Docs:read"]},
        {"scopes": ["docs read"]},
        {"scopes": ["x" * 201]},
        {"scopes": ["dätä:read"]},
        {"scopes": "docs:read"},
        {"scopes": [1]},
        {"user_id": ""},
        {"application_id": None},
        {"resource_id": 5},
    ],
)
async def test_malformed_bodies(api: Api, change: dict[str, Any]) -> None:
    w = await world(api)
    body = {"application_id": "a", "user_id": "u", "resource_id": "r", "scopes": ["docs:read"]}
    body.update(change)
    if change.get("scopes", 1) is None:
        del body["scopes"]
    detail = assert_envelope(await api.post(w.base, json=body), 400, "invalid_body")
    assert detail["details"]["issues"]


async def test_delete_revokes(api: Api) -> None:
    w = await world(api)
    app, res = await w.app(), await w.resource(await w.provider())
    grant = await w.grant(
        application_id=app, user_id="carol", resource_id=res, scopes=["docs:read"]
    )
    url = f"{w.base}/{grant['id']}"
    assert (await api.delete(url)).status_code == 204
    got = (await api.get(url)).json()
    assert got["status"] == "revoked"
    assert [g["id"] for g in (await api.get(w.base + "?status=revoked")).json()["items"]] == [
        grant["id"]
    ]
    assert (await api.get(w.base + "?status=active")).json()["items"] == []
    assert (await api.delete(url)).status_code == 204
    assert_envelope(await api.delete(f"{w.base}/nope"), 404, "grant_not_found")
    assert_envelope(await api.get(f"{w.base}/nope"), 404, "grant_not_found")


async def seed_records(api: Api, zone_id: str, subject: str, count: int) -> None:
    await sql(
        api,
        "INSERT INTO authority_records (id, zone_id, session_type, subject_id, status,"
        " expires_at, authenticated_at, created_at)"
        " SELECT 'ar-' || :z || '-' || :s || '-' || g, :z, 'user', :s, 'active',"
        " now() + interval '1 hour', now(), now() - make_interval(secs => g)"
        " FROM generate_series(1, :n) g",
        z=zone_id, s=subject, n=count,
    )  # fmt: skip


async def test_delete_revokes_authority_records_in_batches(api: Api) -> None:
    w = await world(api)
    app, res = await w.app(), await w.resource(await w.provider())
    grant = await w.grant(application_id=app, user_id="dave", resource_id=res, scopes=["docs:read"])
    await seed_records(api, w.zone["id"], "dave", 1001)
    await seed_records(api, w.zone["id"], "erin", 3)
    response = await api.delete(f"{w.base}/{grant['id']}", headers={"x-request-id": "g4-batch"})
    assert response.status_code == 204
    counts = dict(
        await sql(
            api,
            "SELECT subject_id || ':' || status, count(*) FROM authority_records"
            " WHERE zone_id = :z GROUP BY 1",
            z=w.zone["id"],
        )
    )
    assert counts == {"dave:revoked": 1001, "erin:active": 3}
    reasons = await sql(
        api,
        "SELECT DISTINCT revoked_reason FROM authority_records"
        " WHERE zone_id = :z AND subject_id = 'dave'",
        z=w.zone["id"],
    )
    assert reasons == [("grant_revoked",)]
    rows = await sql(
        api,
        "SELECT stream_name, payload_json FROM event_outbox WHERE request_id = 'g4-batch'",
    )
    assert len(rows) == 1001
    assert {r[0] for r in rows} == {"caracal.sessions.revoke"}
    payload = rows[0][1]
    assert payload["reason"] == "grant_revoked"
    assert payload["grant_id"] == grant["id"]
    assert payload["zone_id"] == w.zone["id"]
    assert payload["session_id"].startswith("ar-")


async def test_locked_record_is_revoked_after_release(api: Api) -> None:
    w = await world(api)
    app, res = await w.app(), await w.resource(await w.provider())
    grant = await w.grant(
        application_id=app, user_id="frank", resource_id=res, scopes=["docs:read"]
    )
    await seed_records(api, w.zone["id"], "frank", 2)
    async with api.runtime.engine.connect() as holder:
        await holder.execute(
            text(
                "SELECT id FROM authority_records WHERE zone_id = :z"
                " AND subject_id = 'frank' FOR UPDATE"
            ),
            {"z": w.zone["id"]},
        )
        task = asyncio.create_task(api.delete(f"{w.base}/{grant['id']}"))
        await asyncio.sleep(0.5)
        assert not task.done()
        await holder.commit()
    response = await task
    assert response.status_code == 204
    statuses = await sql(
        api,
        "SELECT status FROM authority_records WHERE zone_id = :z AND subject_id = 'frank'",
        z=w.zone["id"],
    )
    assert [s[0] for s in statuses] == ["revoked", "revoked"]
