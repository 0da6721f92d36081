"""Resources R1–R5 through the HTTP API (objects.md §7, items 39–47)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from caracal_api.kit.pagination import encode_cursor
from tests.conftest import Api, AppFactory, assert_envelope
from tests.integration.objects.conftest import sql

ROW_KEYS = [
    "id", "zone_id", "name", "identifier", "upstream_url", "scopes", "credential_provider_id",
    "operations", "operation_enforcement", "created_by", "created_via_operator", "updated_by",
    "updated_via_operator", "created_at", "updated_at", "archived_at",
]  # fmt: skip


def base(zone: dict[str, Any]) -> str:
    return f"/v1/zones/{zone['id']}/resources"


async def provider(api: Api, zone: dict[str, Any], name: str = "none") -> str:
    response = await api.post(
        f"/v1/zones/{zone['id']}/providers", json={"name": name, "kind": "none"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def setup(api: Api) -> tuple[dict[str, Any], str]:
    zone = await api.zone()
    return zone, await provider(api, zone)


def body(provider_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Inventory",
        "scopes": ["inventory:read", "inventory:write"],
        "credential_provider_id": provider_id,
        "upstream_url": "https://Inventory.Example.test/v1/",
        **extra,
    }


async def create(api: Api, zone: dict[str, Any], payload: dict[str, Any], **kw: Any) -> Any:
    response = await api.post(base(zone), json=payload, **kw)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_every_field(api: Api) -> None:
    zone, pid = await setup(api)
    resource = await create(api, zone, body(pid))
    assert list(resource) == ROW_KEYS
    assert resource["identifier"] == "resource://inventory"
    assert resource["upstream_url"] == "https://Inventory.Example.test/v1/"
    assert resource["operations"] == []
    assert resource["operation_enforcement"] == "enforced"
    assert resource["credential_provider_id"] == pid
    got = (await api.get(f"{base(zone)}/{resource['id']}")).json()
    assert got == resource


async def test_identifiers(api: Api) -> None:
    zone, pid = await setup(api)
    first = await create(api, zone, body(pid))
    second = await create(api, zone, body(pid))
    assert first["identifier"] == "resource://inventory"
    assert second["identifier"] == "resource://inventory-2"
    explicit = await create(api, zone, body(pid, identifier="https://api.example.test/v2"))
    assert explicit["identifier"] == "https://api.example.test/v2"
    dup = await api.post(base(zone), json=body(pid, identifier="https://api.example.test/v2"))
    assert_envelope(dup, 409, "resource_identifier_conflict")
    other, opid = await setup(api)
    await create(api, other, body(opid, identifier="https://api.example.test/v2"))
    patch = await api.patch(
        f"{base(zone)}/{first['id']}", json={"identifier": "https://api.example.test/v2"}
    )
    assert_envelope(patch, 409, "resource_identifier_conflict")
    # archived identifiers are still probed by generation (never reused by a generated one)
    assert (await api.delete(f"{base(zone)}/{first['id']}")).status_code == 204
    third = await create(api, zone, body(pid))
    assert third["identifier"] == "resource://inventory-3"
    named = await create(api, zone, body(pid, name="resource://Keep/This"))
    assert named["identifier"] == "resource://Keep/This"


async def test_generated_identifier_ignores_byte_order_neighbours(api: Api) -> None:
    # The probe scans [base, base + "."): "!" sorts inside that range, "." and "X" just
    # past it; none of them is a candidate, so none may push generation forward.
    zone, pid = await setup(api)
    for neighbour in ("resource://inventory!x", "resource://inventory.d", "resource://inventoryX"):
        await create(api, zone, body(pid, identifier=neighbour))
    archived = await create(api, zone, body(pid, identifier="resource://inventory-2"))
    assert (await api.delete(f"{base(zone)}/{archived['id']}")).status_code == 204
    first = await create(api, zone, body(pid))
    second = await create(api, zone, body(pid))
    assert first["identifier"] == "resource://inventory"
    assert second["identifier"] == "resource://inventory-3"


async def test_operations_normalised(api: Api) -> None:
    zone, pid = await setup(api)
    ops = [{"method": " get ", "path": " /items ", "scope": "inventory:read"}]
    resource = await create(
        api, zone, body(pid, operations=ops, operation_enforcement="transport_uniform")
    )
    assert resource["operations"] == [
        {"method": "GET", "path": "/items", "scope": "inventory:read"}
    ]
    assert resource["operation_enforcement"] == "transport_uniform"


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"scopes": []}, "invalid_resource"),
        ({"scopes": None}, "invalid_resource"),
        ({"scopes": "read"}, "invalid_resource"),
        ({"scopes": [f"s{i}" for i in range(65)]}, "invalid_resource"),
        ({"scopes": ["x" * 201]}, "invalid_resource"),
        ({"name": "x" * 201}, "invalid_resource"),
        ({"identifier": "r:" + "x" * 518}, "invalid_resource"),
        ({"upstream_url": "ftp://files.example"}, "invalid_resource"),
        ({"upstream_url": "garbage"}, "invalid_resource"),
        ({"operation_enforcement": "loose"}, "invalid_resource"),
        ({"operations": [{"method": "GET", "path": "/x"}]}, "invalid_resource"),
        ({"name": None}, "invalid_resource"),
        ({"identifier": "provider://sneaky"}, "invalid_resource_identifier"),
        ({"identifier": "not a uri"}, "invalid_resource_identifier"),
        ({"identifier": "https://user:pw@host.example"}, "invalid_resource_identifier"),
        ({"upstream_url": None}, "upstream_url_required"),
        ({"credential_provider_id": None}, "credential_provider_required"),
        ({"credential_provider_id": "missing"}, "provider_not_found"),
        (
            {"operations": [{"method": "GET", "path": "/x", "scope": "admin"}]},
            "operation_scope_not_in_resource_scopes",
        ),
        (
            {"operations": [{"method": "GET", "path": "x", "scope": "inventory:read"}]},
            "operation_path_must_be_absolute",
        ),
        (
            {
                "operations": [
                    {"method": "GET", "path": "/x", "scope": "inventory:read"},
                    {"method": "get", "path": "/x", "scope": "inventory:read"},
                ]
            },
            "operation_duplicate",
        ),
    ],
)
async def test_invalid_creates(api: Api, extra: dict[str, Any], code: str) -> None:
    zone, pid = await setup(api)
    response = await api.post(base(zone), json=body(pid, **extra))
    status = 404 if code == "provider_not_found" else 400
    assert_envelope(response, status, code)


async def test_name_or_identifier_required(api: Api) -> None:
    zone, pid = await setup(api)
    payload = body(pid)
    del payload["name"]
    assert_envelope(await api.post(base(zone), json=payload), 400, "invalid_resource")
    assert_envelope(
        await api.post("/v1/zones/nope/resources", json=body(pid)), 404, "zone_not_found"
    )


async def test_patch(api: Api) -> None:
    zone, pid = await setup(api)
    ops = [{"method": "GET", "path": "/items", "scope": "inventory:read"}]
    resource = await create(api, zone, body(pid, operations=ops))
    url = f"{base(zone)}/{resource['id']}"
    patched = await api.patch(url, json={"scopes": ["inventory:read", "inventory:admin"]})
    assert patched.status_code == 200
    after = patched.json()
    assert after["scopes"] == ["inventory:read", "inventory:admin"]
    assert after["updated_at"] > resource["updated_at"]
    assert {k: v for k, v in after.items() if k not in ("scopes", "updated_at", "updated_by")} == {
        k: v for k, v in resource.items() if k not in ("scopes", "updated_at", "updated_by")
    }
    narrowed = await api.patch(url, json={"scopes": ["inventory:admin"]})
    assert_envelope(narrowed, 400, "operation_scope_not_in_resource_scopes")
    assert (await api.get(url)).json()["scopes"] == ["inventory:read", "inventory:admin"]
    assert_envelope(await api.patch(url, json={"upstream_url": None}), 400, "upstream_url_required")
    assert_envelope(
        await api.patch(url, json={"credential_provider_id": None}),
        400,
        "credential_provider_required",
    )
    assert_envelope(
        await api.patch(url, json={"scopes": [f"s{i}" for i in range(20_000)]}),
        400,
        "invalid_resource",
    )
    assert_envelope(await api.patch(url, json={}), 400, "no_fields")
    assert_envelope(await api.patch(url, json={"name": None}), 400, "invalid_resource")
    assert_envelope(
        await api.patch(f"{base(zone)}/nope", json={"name": "x"}), 404, "resource_not_found"
    )
    assert_envelope(
        await api.patch(url, json={"credential_provider_id": "missing"}), 404, "provider_not_found"
    )


async def test_delete(api: Api) -> None:
    zone, pid = await setup(api)
    resource = await create(api, zone, body(pid, identifier="urn:inventory"))
    url = f"{base(zone)}/{resource['id']}"
    assert (await api.delete(url)).status_code == 204
    for response in (
        await api.get(url),
        await api.delete(url),
        await api.patch(url, json={"name": "x"}),
    ):
        assert_envelope(response, 404, "resource_not_found")
    archived = (await api.get(base(zone) + "?status=archived")).json()["items"]
    assert [r["id"] for r in archived] == [resource["id"]]
    await create(api, zone, body(pid, identifier="urn:inventory"))


async def test_quota(make_api: AppFactory) -> None:
    api = await make_api(api_max_resources_per_zone=1)
    zone, pid = await setup(api)
    await create(api, zone, body(pid))
    assert_envelope(await api.post(base(zone), json=body(pid)), 409, "resource_quota_exceeded")


async def test_quota_counts_again_after_an_archive(make_api: AppFactory) -> None:
    # A small quota is inside the margin of resources/quota.py: every create counts.
    api = await make_api(api_max_resources_per_zone=2)
    zone, pid = await setup(api)
    first = await create(api, zone, body(pid))
    await create(api, zone, body(pid))
    assert_envelope(await api.post(base(zone), json=body(pid)), 409, "resource_quota_exceeded")
    assert (await api.delete(f"{base(zone)}/{first['id']}")).status_code == 204
    await create(api, zone, body(pid))
    assert_envelope(await api.post(base(zone), json=body(pid)), 409, "resource_quota_exceeded")


async def test_control_resource(api: Api) -> None:
    zone = await api.zone()
    control = {"name": "Control", "identifier": "caracal-control", "scopes": ["control:invoke"]}
    zone_writer = (await api.mint("write", zone=zone["id"]))["token"]
    assert_envelope(
        await api.post(base(zone), json=control, token=zone_writer), 409, "protected_resource"
    )
    resource = await create(api, zone, control)
    assert resource["credential_provider_id"] == f"provider-none-{zone['id']}"
    assert resource["upstream_url"] is None
    url = f"{base(zone)}/{resource['id']}"
    assert_envelope(
        await api.patch(url, json={"name": "x"}, token=zone_writer), 409, "protected_resource"
    )
    assert (await api.patch(url, json={"name": "Control 2"})).status_code == 200
    assert_envelope(await api.delete(url), 409, "protected_resource")
    zone_reader = (await api.mint("read", zone=zone["id"]))["token"]
    assert_envelope(await api.get(url, token=zone_reader), 404, "resource_not_found")
    assert (await api.get(base(zone), token=zone_reader)).json()["items"] == []
    assert len((await api.get(base(zone))).json()["items"]) == 1
    app = await api.post(
        f"/v1/zones/{zone['id']}/applications", json={"name": "a", "registration_method": "managed"}
    )
    grant = await api.post(
        f"/v1/zones/{zone['id']}/grants",
        json={
            "application_id": app.json()["id"],
            "user_id": "u",
            "resource_id": resource["id"],
            "scopes": ["control:invoke"],
        },
    )
    assert_envelope(grant, 403, "control_resource_not_grantable")


async def test_control_none_provider_identifier_taken(api: Api) -> None:
    zone = await api.zone()
    await api.post(
        f"/v1/zones/{zone['id']}/providers", json={"identifier": "provider://none", "kind": "none"}
    )
    control = {"identifier": "caracal-control", "scopes": ["control:invoke"]}
    assert_envelope(await api.post(base(zone), json=control), 409, "provider_identifier_conflict")


async def test_reserved_identifier(api: Api) -> None:
    zone, pid = await setup(api)
    writer = (await api.mint())["token"]
    response = await api.post(
        base(zone), json=body(pid, identifier="caracal-sys://x"), token=writer
    )
    assert_envelope(response, 409, "reserved_namespace")


async def test_paging_each_row_once(api: Api) -> None:
    zone, pid = await setup(api)
    ids = [(await create(api, zone, body(pid, name=f"r{i}")))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = (await api.get(base(zone) + f"?limit=2{suffix}")).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5
    rows = await sql(api, "SELECT count(*) FROM resources WHERE zone_id = :z", z=zone["id"])
    assert rows[0][0] == 5


async def test_database_rendering_matches_python_rendering(api: Api) -> None:
    """List and get render in PostgreSQL (kit.wirejson); create and PATCH in Python."""
    zone, pid = await setup(api)
    ops = [{"method": "POST", "path": "/items/{id}", "scope": "inventory:write"}]
    created = [
        await create(api, zone, body(pid, name='Ünï "quoted" \\ back\tslash', operations=ops)),
        await create(api, zone, body(pid, name="plain", scopes=["a:b"])),
        await create(api, zone, body(pid, name="emoji 🦊", identifier="urn:x:y")),
    ]
    patched = await api.patch(f"{base(zone)}/{created[1]['id']}", json={"name": "renamed\n"})
    assert patched.status_code == 200, patched.text
    created[1] = patched.json()
    listed = (await api.get(base(zone))).json()["items"]
    assert [item["id"] for item in listed] == [c["id"] for c in reversed(created)]
    for item, python_rendered in zip(listed, reversed(created), strict=True):
        assert list(item) == ROW_KEYS
        assert item == python_rendered
        got = (await api.get(f"{base(zone)}/{item['id']}")).json()
        assert list(got) == ROW_KEYS
        assert got == python_rendered
    archived = created[2]
    assert (await api.delete(f"{base(zone)}/{archived['id']}")).status_code == 204
    [gone] = (await api.get(base(zone) + "?status=archived")).json()["items"]
    assert gone["archived_at"] is not None
    assert gone["archived_at"].endswith("Z")
    assert gone["archived_at"] == gone["updated_at"]
    changed = {"archived_at", "updated_at", "updated_by"}
    assert {k: v for k, v in gone.items() if k not in changed} == {
        k: v for k, v in archived.items() if k not in changed
    }


async def test_database_cursor_is_the_python_cursor(api: Api) -> None:
    zone, pid = await setup(api)
    for i in range(3):
        await create(api, zone, body(pid, name=f"c{i}"))
    first = (await api.get(base(zone) + "?limit=2")).json()
    last = first["items"][-1]
    ts = datetime.fromisoformat(last["created_at"].replace("Z", "+00:00"))
    assert first["next_cursor"] == encode_cursor(ts, last["id"])
    rest = (await api.get(base(zone) + f"?limit=2&cursor={first['next_cursor']}")).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_missing_zone_answers_before_a_bad_body(api: Api) -> None:
    _, pid = await setup(api)
    bad = await api.post("/v1/zones/nope/resources", json={"scopes": []})
    assert_envelope(bad, 404, "zone_not_found")
    archived = await api.zone()
    assert (await api.delete(f"/v1/zones/{archived['id']}")).status_code == 204
    valid = await api.post(base(archived), json=body(pid))
    assert_envelope(valid, 404, "zone_not_found")


async def test_concurrent_creates_of_one_name_get_distinct_identifiers(api: Api) -> None:
    zone, pid = await setup(api)
    responses = await asyncio.gather(*(api.post(base(zone), json=body(pid)) for _ in range(8)))
    assert [r.status_code for r in responses] == [201] * 8
    identifiers = {r.json()["identifier"] for r in responses}
    assert identifiers == {"resource://inventory"} | {
        f"resource://inventory-{n}" for n in range(2, 9)
    }


async def test_cached_pages_follow_every_row_version(api: Api) -> None:
    """Repeated pages come from documents cached by row version; any write shows at once."""
    zone, pid = await setup(api)
    for i in range(3):
        await create(api, zone, body(pid, name=f"v{i}"))
    first = (await api.get(base(zone) + "?limit=2")).json()
    cache = api.runtime.services["resource_pages"]
    cached_before = len(cache)
    again = (await api.get(base(zone) + "?limit=2")).json()
    assert again == first
    assert len(cache) == cached_before  # served from the cache, nothing rendered anew
    target = first["items"][0]["id"]
    # A write that bypasses the API and leaves updated_at alone still makes a new version.
    await sql(api, "UPDATE resources SET name = 'renamed outside' WHERE id = :id", id=target)
    after = (await api.get(base(zone) + "?limit=2")).json()
    assert after["items"][0]["name"] == "renamed outside"
    assert after["items"][0]["updated_at"] == first["items"][0]["updated_at"]
    assert after["next_cursor"] == first["next_cursor"]
    rest = (await api.get(base(zone) + f"?limit=2&cursor={after['next_cursor']}")).json()
    assert [item["name"] for item in rest["items"]] == ["v0"]


async def test_cached_pages_follow_membership_and_who_asks(api: Api) -> None:
    """A page is cached per query and caller kind; rows entering or leaving it show at once."""
    zone = await api.zone()
    control = {"name": "Control", "identifier": "caracal-control", "scopes": ["control:invoke"]}
    pid = (await create(api, zone, control))["credential_provider_id"]  # the zone's "none"
    await create(api, zone, body(pid, name="first"))
    reader = (await api.mint("read", zone=zone["id"]))["token"]

    async def names(token: str | None = None) -> list[str]:
        response = await api.get(base(zone), token=token) if token else await api.get(base(zone))
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    for _ in range(2):  # the second round is served from the cache
        assert await names() == ["first", "Control"]
        assert await names(reader) == ["first"]
    newest = await create(api, zone, body(pid, name="second"))
    assert await names() == ["second", "first", "Control"]
    assert await names(reader) == ["second", "first"]
    assert (await api.delete(f"{base(zone)}/{newest['id']}")).status_code == 204
    assert await names(reader) == ["first"]
    archived = (await api.get(base(zone) + "?status=archived")).json()["items"]
    assert [item["name"] for item in archived] == ["second"]
