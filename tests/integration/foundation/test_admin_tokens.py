"""Admin tokens T1–T3 (foundation §17)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.conftest import BOOTSTRAP_TOKEN, Api, AppFactory, assert_envelope
from tests.integration.foundation.support import bootstrap_id, fetch_one, open_api, unique

CREATED_KEYS = ["id", "name", "scope", "capability", "zone_id", "created_by", "created_at", "token"]
LIST_KEYS = [
    "id",
    "name",
    "scope",
    "capability",
    "zone_id",
    "created_by",
    "created_at",
    "last_used_at",
    "revoked_at",
]
TOKEN_RE = re.compile(r"^cat_[A-Za-z0-9_-]{43}$")
PHC_RE = re.compile(r"^\$argon2id\$v=19\$m=65536,t=3,p=2\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module."""
    async with open_api(database_dsn, redis_url) as app:
        yield app


async def mint(api: Api, token: str | None = None, **body: object) -> dict:
    response = await api.post("/v1/admin-tokens", json={"name": "t", **body}, token=token)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def all_tokens(api: Api) -> tuple[list[dict], str]:
    items: list[dict] = []
    texts = []
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/admin-tokens", params=params)
        assert response.status_code == 200
        texts.append(response.text)
        items.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items, "".join(texts)


# foundation §18 item 66
async def test_mint_global_read_token(api: Api) -> None:
    response = await api.post(
        "/v1/admin-tokens", json={"name": "reader", "scope": "global", "capability": "read"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == CREATED_KEYS
    assert TOKEN_RE.fullmatch(body["token"])
    assert len(body["token"]) >= 32
    assert (body["name"], body["scope"], body["capability"], body["zone_id"]) == (
        "reader",
        "global",
        "read",
        None,
    )
    assert body["created_by"] == f"admin:{await bootstrap_id(api)}"
    row = await fetch_one(
        api,
        "SELECT token_sha256, token_hash, created_by FROM admin_tokens WHERE id = :id",
        id=body["id"],
    )
    assert row is not None
    assert bytes(row.token_sha256) == hashlib.sha256(body["token"].encode()).digest()
    assert PHC_RE.fullmatch(row.token_hash)
    assert body["token"] not in row.token_hash
    # It works, as a read token.
    assert (await api.get("/v1/zones?limit=1", token=body["token"])).status_code == 200
    response = await api.post("/v1/zones", json={"name": "nope"}, token=body["token"])
    assert_envelope(response, 403, "admin_token_read_only")


# foundation §18 item 66
async def test_default_capability_is_write(api: Api) -> None:
    body = await mint(api, scope="global")
    assert body["capability"] == "write"
    zone = await api.zone(unique("token zone"))
    scoped = await mint(api, scope="zone", zone_id=zone["id"], name=" padded name ")
    assert (scoped["scope"], scoped["zone_id"], scoped["capability"]) == (
        "zone",
        zone["id"],
        "write",
    )
    assert scoped["name"] == " padded name "  # not trimmed


# foundation §18 item 67
async def test_list_never_shows_secrets(api: Api) -> None:
    live = await mint(api, scope="global", capability="read", name="listed")
    gone = await mint(api, scope="global", capability="read", name="revoked and listed")
    assert (await api.delete(f"/v1/admin-tokens/{gone['id']}")).status_code == 204
    items, text = await all_tokens(api)
    for secret in (live["token"], gone["token"], BOOTSTRAP_TOKEN):
        assert secret not in text
    assert "token_hash" not in text
    assert "token_sha256" not in text
    assert "argon2" not in text
    by_id = {item["id"]: item for item in items}
    for item in items:
        assert list(item) == LIST_KEYS
    assert by_id[live["id"]]["revoked_at"] is None
    assert by_id[gone["id"]]["revoked_at"] is not None
    assert by_id[gone["id"]]["name"] == "revoked and listed"
    # A read token may list too (MG GET); a zone token may not.
    assert (await api.get("/v1/admin-tokens", token=live["token"])).status_code == 200


# foundation §18 item 68
async def test_mint_validation(api: Api) -> None:
    zone = await api.zone(unique("validation"))
    cases = [
        ({"name": "x", "scope": "zone"}, 400, "zone_id_required"),
        ({"name": "x", "scope": "zone", "capability": "read"}, 400, "zone_id_required"),
        (
            {"name": "x", "scope": "global", "zone_id": zone["id"]},
            400,
            "zone_id_not_allowed_for_global",
        ),
        ({"name": "x", "scope": "zone", "zone_id": "no-such-zone"}, 404, "zone_not_found"),
        ({"name": "x", "scope": "planet"}, 400, "invalid_admin_token_request"),
        (
            {"name": "x", "scope": "global", "capability": "admin"},
            400,
            "invalid_admin_token_request",
        ),
        (
            {"name": "x", "scope": "global", "capability": "READ"},
            400,
            "invalid_admin_token_request",
        ),
        ({"name": "x", "scope": "global", "token": "cat_mine"}, 400, "invalid_admin_token_request"),
        ({"scope": "global"}, 400, "invalid_admin_token_request"),
        ({"name": "", "scope": "global"}, 400, "invalid_admin_token_request"),
        ({"name": "n" * 121, "scope": "global"}, 400, "invalid_admin_token_request"),
        ({"name": 5, "scope": "global"}, 400, "invalid_admin_token_request"),
        ({"name": "x"}, 400, "invalid_admin_token_request"),
        ({"name": "x", "scope": "zone", "zone_id": "bad id!"}, 400, "invalid_admin_token_request"),
        ({"name": "x", "scope": "global", "id": "chosen"}, 400, "invalid_admin_token_request"),
        ({"name": "x", "scope": "global", "created_by": "me"}, 400, "invalid_admin_token_request"),
    ]
    for body, status, code in cases:
        response = await api.post("/v1/admin-tokens", json=body)
        assert_envelope(response, status, code)
    assert_envelope(
        await api.post("/v1/admin-tokens", json=["name"]), 400, "invalid_admin_token_request"
    )
    assert (await mint(api, scope="global", name="n" * 120))["name"] == "n" * 120


# foundation §18 item 69
async def test_only_bootstrap_mints_approve(api: Api) -> None:
    writer = await mint(api, scope="global", capability="write", name="writer")
    response = await api.post(
        "/v1/admin-tokens",
        json={"name": "approver", "scope": "global", "capability": "approve"},
        token=writer["token"],
    )
    assert_envelope(response, 403, "approve_mint_requires_bootstrap")
    zone = await api.zone(unique("approvals"))
    response = await api.post(
        "/v1/admin-tokens",
        json={"name": "approver", "scope": "zone", "zone_id": zone["id"], "capability": "approve"},
        token=writer["token"],
    )
    assert_envelope(response, 403, "approve_mint_requires_bootstrap")
    # The minted writer may mint other capabilities.
    read = await mint(api, token=writer["token"], scope="global", capability="read")
    assert read["created_by"] == f"admin:{writer['id']}"
    approver = await mint(api, scope="global", capability="approve", name="approver")
    assert approver["capability"] == "approve"
    assert approver["created_by"] == f"admin:{await bootstrap_id(api)}"


# foundation §18 item 70
async def test_revoke(api: Api, make_api: AppFactory) -> None:
    other_replica = await make_api()
    victim = await mint(api, scope="global", capability="read", name="victim")
    for replica in (api, other_replica):
        assert (await replica.get("/v1/zones?limit=1", token=victim["token"])).status_code == 200
    response = await api.delete(f"/v1/admin-tokens/{victim['id']}")
    assert response.status_code == 204
    assert response.content == b""
    revoked_at = time.monotonic()
    # At once on the replica that revoked it.
    response = await api.get("/v1/zones?limit=1", token=victim["token"])
    assert_envelope(response, 401, "invalid_admin_token")
    # Within a second on the other one.
    while True:
        asked_at = time.monotonic()
        response = await other_replica.get("/v1/zones?limit=1", token=victim["token"])
        if response.status_code == 401:
            break
        assert response.status_code == 200
        assert asked_at - revoked_at < 1.0  # still accepted only inside the bound
    assert_envelope(response, 401, "invalid_admin_token")
    again = await api.delete(f"/v1/admin-tokens/{victim['id']}")
    assert_envelope(again, 404, "admin_token_not_found")
    assert_envelope(await api.delete("/v1/admin-tokens/never-minted"), 404, "admin_token_not_found")
    assert_envelope(await api.delete("/v1/admin-tokens/bad%20id"), 400, "invalid_params")
    # A token may revoke itself.
    selfish = await mint(api, scope="global", name="self-revoking")
    response = await api.delete(f"/v1/admin-tokens/{selfish['id']}", token=selfish["token"])
    assert response.status_code == 204
    response = await api.get("/v1/zones?limit=1", token=selfish["token"])
    assert_envelope(response, 401, "invalid_admin_token")
