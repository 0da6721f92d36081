"""Providers P1–P7 through the HTTP API (objects.md §7, items 25–38)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Api, AppFactory, assert_envelope
from tests.fixtures.http_servers import LocalServer, Reply
from tests.integration.objects.conftest import sql

ROW_KEYS = [
    "id", "zone_id", "name", "identifier", "kind", "config_json", "secret_config_keys",
    "connectivity_failed_at", "created_by", "created_via_operator", "updated_by",
    "updated_via_operator", "created_at", "updated_at", "archived_at",
]  # fmt: skip
CC = "oauth2_client_credentials"
AC = "oauth2_authorization_code"


def base(zone: dict[str, Any]) -> str:
    return f"/v1/zones/{zone['id']}/providers"


async def create(api: Api, zone: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await api.post(base(zone), json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def secret_doc(api: Api, zone: dict[str, Any], provider_id: str) -> dict[str, str] | None:
    store = api.runtime.services.get("secret_store")
    ref = f"zones/{zone['id']}/providers/{provider_id}/secretConfig"
    rows = await sql(api, "SELECT envelope FROM secret_store WHERE ref = :r", r=ref)
    if not rows:
        return None
    assert store is not None
    return json.loads(store.keys.open(bytes(rows[0][0]), ref))  # type: ignore[no-any-return]


def cc_config(server: LocalServer, **extra: Any) -> dict[str, Any]:
    return {"token_endpoint": server.url("/token"), "client_id": "cid", **extra}


# --- creates (25-28) -----------------------------------------------------------------------


async def test_api_key_create(api: Api) -> None:
    zone = await api.zone()
    body = {
        "name": "Weather Acc. EU",
        "kind": "api_key",
        "config_json": {"header_name": "X-Api-Key", "api_key": "  sk-secret-123  "},
    }
    response = await api.post(base(zone), json=body)
    assert response.status_code == 201
    provider = response.json()
    assert list(provider) == ROW_KEYS
    assert provider["kind"] == "api_key"
    assert provider["identifier"] == "provider://weather-acc-eu"
    assert provider["name"] == "Weather Acc. EU"
    assert provider["config_json"] == {"auth_location": "header", "header_name": "X-Api-Key"}
    assert provider["secret_config_keys"] == ["api_key"]
    assert provider["connectivity_failed_at"] is None
    assert "sk-secret-123" not in response.text
    assert await secret_doc(api, zone, provider["id"]) == {"api_key": "sk-secret-123"}
    for path in (base(zone), f"{base(zone)}/{provider['id']}"):
        assert "sk-secret-123" not in (await api.get(path)).text
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events"
        " WHERE path = :p AND status_code = 201",
        p=base(zone),
    )
    assert audit[0][0] == "providers"
    assert audit[0][1] == provider["id"]
    assert audit[0][2]["secret_rotated"] is True
    assert "sk-secret-123" not in json.dumps(audit[0][2])


@pytest.mark.parametrize(
    ("kind", "config", "keys"),
    [
        (
            "api_key",
            {"auth_location": "query", "query_param_name": "key", "api_key": "k"},
            ["api_key"],
        ),
        ("bearer_token", {"bearer_token": "tok"}, ["bearer_token"]),
        ("http_basic", {"username": "u", "password": "p"}, ["password"]),
        ("none", {}, []),
        ("caracal_mandate", {}, []),
    ],
)
async def test_other_kinds(api: Api, kind: str, config: dict[str, Any], keys: list[str]) -> None:
    zone = await api.zone()
    provider = await create(api, zone, name=f"p-{kind}", kind=kind, config_json=config)
    assert provider["secret_config_keys"] == keys
    assert provider["connectivity_failed_at"] is None
    if kind == "http_basic":
        assert provider["config_json"] == {"username": "u"}


@pytest.mark.parametrize("kind", ["none", "caracal_mandate"])
async def test_keys_refused_on_none_kinds(api: Api, kind: str) -> None:
    zone = await api.zone()
    response = await api.post(
        base(zone), json={"name": "x", "kind": kind, "config_json": {"api_key": "k"}}
    )
    assert_envelope(response, 400, "invalid_provider_config")


async def test_client_credentials_create(api: Api, local_https: LocalServer) -> None:
    zone = await api.zone()
    provider = await create(
        api, zone, name="cc", kind=CC, config_json=cc_config(local_https, client_secret="s")
    )
    config = provider["config_json"]
    assert config["allowed_token_hosts"] == ["localhost"]
    assert config["grant_type"] == "client_credentials"
    assert config["client_auth_method"] == "client_secret_basic"
    assert provider["secret_config_keys"] == ["client_secret"]
    assert provider["connectivity_failed_at"] is not None


async def test_public_client_and_private_key_jwt_and_jwt_bearer(
    api: Api, local_https: LocalServer
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    zone = await api.zone()
    public = await create(
        api, zone, name="pub", kind=AC,
        config_json={
            "authorization_endpoint": local_https.url("/authorize"),
            "token_endpoint": local_https.url("/token"),
            "redirect_uri": "https://app.example.test/cb",
            "client_id": "cid",
            "client_auth_method": "none",
        },
    )  # fmt: skip
    assert public["secret_config_keys"] == []
    config = cc_config(
        local_https, client_auth_method="private_key_jwt", key_id="k1", private_key=pem
    )
    pkjwt = await create(api, zone, name="pk", kind=CC, config_json=config)
    assert pkjwt["config_json"]["key_id"] == "k1"
    assert pkjwt["secret_config_keys"] == ["private_key"]
    assert "PRIVATE KEY" not in json.dumps(pkjwt)
    bearer = await create(
        api,
        zone,
        name="jb",
        kind=CC,
        config_json=cc_config(local_https, grant_type="jwt_bearer", private_key=pem),
    )
    assert bearer["config_json"]["client_auth_method"] == "none"


# --- invalid creates (29-30) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "kind": "magic"}, "invalid_provider"),
        ({"kind": "none"}, "invalid_provider"),
        ({"name": "  ", "identifier": "", "kind": "none"}, "invalid_provider"),
        ({"name": "x", "kind": "none", "config_json": []}, "invalid_provider"),
        ({"name": "x", "kind": "none", "config_json": "x"}, "invalid_provider"),
        ({"name": None, "kind": "none"}, "invalid_provider"),
        ({"name": "x", "kind": "none", "check": "yes"}, "invalid_provider"),
        ({"name": "x" * 201, "kind": "none"}, "invalid_provider"),
        ({"identifier": "Provider://Upper", "kind": "none"}, "invalid_provider_identifier"),
        ({"identifier": "https://not-a-provider", "kind": "none"}, "invalid_provider_identifier"),
        ({"identifier": "provider://ünï", "kind": "none"}, "invalid_provider_identifier"),
        (
            {"name": "x", "kind": "api_key", "config_json": {"header_name": "X-K"}},
            "invalid_provider_config",
        ),
        (
            {"name": "x", "kind": "api_key", "config_json": {"api_key": "k"}},
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": "api_key",
                "config_json": {"header_name": "Host", "api_key": "k"},
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": "api_key",
                "config_json": {"header_name": "x-caracal-foo", "api_key": "k"},
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": "api_key",
                "config_json": {"header_name": "X", "api_key": "k", "foo": 1},
            },
            "invalid_provider_config",
        ),
        (
            {"name": "x", "kind": "api_key", "config_json": {"header_name": "X", "api_key": "  "}},
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": "api_key",
                "config_json": {"header_name": "X", "api_key": "a\u0001b"},
            },
            "invalid_provider_config",
        ),
        (
            {"name": "x", "kind": "bearer_token", "config_json": {"bearer_token": "Bearer abc"}},
            "invalid_provider_config",
        ),
        (
            {"name": "x", "kind": "http_basic", "config_json": {"password": "p"}},
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": CC,
                "config_json": {
                    "token_endpoint": "http://idp.example/t",
                    "client_id": "c",
                    "client_secret": "s",
                },
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": CC,
                "config_json": {"token_endpoint": "https://idp.example/t", "client_id": "c"},
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": CC,
                "config_json": {
                    "token_endpoint": "https://idp.example/t",
                    "client_id": "c",
                    "client_secret": "s",
                    "token_params": {"scope": "x"},
                },
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": AC,
                "config_json": {
                    "authorization_endpoint": "http://idp.example/a",
                    "token_endpoint": "https://idp.example/t",
                    "redirect_uri": "https://a/cb",
                    "client_id": "c",
                    "client_secret": "s",
                },
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": AC,
                "config_json": {
                    "authorization_endpoint": "https://idp.example/a",
                    "token_endpoint": "https://idp.example/t",
                    "redirect_uri": "/cb",
                    "client_id": "c",
                    "client_secret": "s",
                },
            },
            "invalid_provider_config",
        ),
        (
            {
                "name": "x",
                "kind": AC,
                "config_json": {
                    "authorization_endpoint": "https://idp.example/a",
                    "token_endpoint": "https://idp.example/t",
                    "redirect_uri": "https://a/cb",
                    "client_id": "c",
                    "client_secret": "s",
                    "authorization_params": {"state": "x"},
                },
            },
            "invalid_provider_config",
        ),
    ],
)
async def test_invalid_creates(api: Api, body: dict[str, Any], code: str) -> None:
    zone = await api.zone()
    assert_envelope(await api.post(base(zone), json=body), 400, code)
    assert await sql(api, "SELECT id FROM providers WHERE zone_id = :z", z=zone["id"]) == []


async def test_trimmed_secret_and_schemeless_bearer_prefix(api: Api) -> None:
    zone = await api.zone()
    provider = await create(
        api,
        zone,
        name="k",
        kind="api_key",
        config_json={"header_name": "X-K", "api_key": "Bearer abc"},
    )
    assert await secret_doc(api, zone, provider["id"]) == {"api_key": "Bearer abc"}


async def test_unknown_zone_and_reserved(api: Api) -> None:
    response = await api.post("/v1/zones/nope/providers", json={"name": "x", "kind": "none"})
    assert_envelope(response, 404, "zone_not_found")
    zone = await api.zone()
    writer = (await api.mint())["token"]
    reserved = await api.post(
        base(zone), json={"identifier": "provider://caracal-sys-x", "kind": "none"}, token=writer
    )
    assert_envelope(reserved, 409, "reserved_namespace")
    generated = await api.post(
        base(zone), json={"name": "caracal-sys-thing", "kind": "none"}, token=writer
    )
    assert_envelope(generated, 409, "reserved_namespace")


# --- identifiers (31) ----------------------------------------------------------------------


async def test_identifier_conflicts(api: Api) -> None:
    zone = await api.zone()
    first = await create(api, zone, identifier="provider://acme", kind="none")
    assert first["name"] == "provider://acme"
    response = await api.post(base(zone), json={"identifier": " provider://acme ", "kind": "none"})
    assert_envelope(response, 409, "provider_identifier_conflict")
    a = await create(api, zone, name="Same Name", kind="none")
    b = await create(api, zone, name="Same Name", kind="none")
    assert a["identifier"] == "provider://same-name"
    assert b["identifier"] == "provider://same-name-2"
    patch = await api.patch(f"{base(zone)}/{b['id']}", json={"identifier": "provider://acme"})
    assert_envelope(patch, 409, "provider_identifier_conflict")
    assert (await api.delete(f"{base(zone)}/{first['id']}")).status_code == 204
    await create(api, zone, identifier="provider://acme", kind="none")


async def test_concurrent_generated_identifiers(api: Api) -> None:
    zone = await api.zone()
    responses = await asyncio.gather(
        *(api.post(base(zone), json={"name": "Burst", "kind": "none"}) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["identifier"] for r in responses}) == 5


# --- PATCH (32) ----------------------------------------------------------------------------


async def test_patch_rules(api: Api) -> None:
    zone = await api.zone()
    provider = await create(
        api,
        zone,
        name="k",
        kind="api_key",
        config_json={"header_name": "X-K", "api_key": "secret-1"},
    )
    url = f"{base(zone)}/{provider['id']}"
    renamed = (await api.patch(url, json={"name": "renamed"})).json()
    assert renamed["name"] == "renamed"
    assert renamed["identifier"] == provider["identifier"]
    assert renamed["secret_config_keys"] == ["api_key"]
    public_only = await api.patch(url, json={"config_json": {"header_name": "X-Other"}})
    assert public_only.status_code == 200, public_only.text
    assert public_only.json()["config_json"]["header_name"] == "X-Other"
    assert public_only.json()["secret_config_keys"] == ["api_key"]
    assert await secret_doc(api, zone, provider["id"]) == {"api_key": "secret-1"}
    switched = await api.patch(
        url, json={"kind": "bearer_token", "config_json": {"bearer_token": "t2"}}
    )
    assert switched.status_code == 200
    assert switched.json()["secret_config_keys"] == ["bearer_token"]
    assert await secret_doc(api, zone, provider["id"]) == {"bearer_token": "t2"}
    assert_envelope(await api.patch(url, json={"kind": "none"}), 400, "provider_config_required")
    assert_envelope(await api.patch(url, json={}), 400, "no_fields")
    assert_envelope(
        await api.patch(url, json={"config_json": {"auth_header": "Host"}}),
        400,
        "invalid_provider_config",
    )
    assert_envelope(
        await api.patch(f"{base(zone)}/nope", json={"name": "x"}), 404, "provider_not_found"
    )
    assert_envelope(await api.patch(url, json={"name": None}), 400, "invalid_provider")
    to_none = await api.patch(url, json={"kind": "none", "config_json": {}})
    assert to_none.json()["secret_config_keys"] == []
    assert await secret_doc(api, zone, provider["id"]) is None


async def test_patch_oauth_stored_secret_rule(api: Api, local_https: LocalServer) -> None:
    zone = await api.zone()
    provider = await create(
        api, zone, name="cc", kind=CC, config_json=cc_config(local_https, client_secret="s")
    )
    url = f"{base(zone)}/{provider['id']}"
    ok = await api.patch(url, json={"config_json": cc_config(local_https, scopes=["a"])})
    assert ok.status_code == 200, ok.text
    assert ok.json()["connectivity_failed_at"] == provider["connectivity_failed_at"]
    await sql(
        api, "UPDATE providers SET secret_config_keys = '{}' WHERE id = :id", id=provider["id"]
    )
    assert_envelope(
        await api.patch(url, json={"config_json": cc_config(local_https)}),
        400,
        "invalid_provider_config",
    )


# --- DELETE (33) ---------------------------------------------------------------------------


async def test_delete(api: Api) -> None:
    zone = await api.zone()
    provider = await create(
        api, zone, name="k", kind="bearer_token", config_json={"bearer_token": "t"}
    )
    url = f"{base(zone)}/{provider['id']}"
    assert (await api.delete(url)).status_code == 204
    assert_envelope(await api.get(url), 404, "provider_not_found")
    assert_envelope(await api.delete(url), 404, "provider_not_found")
    archived = (await api.get(base(zone) + "?status=archived")).json()["items"]
    assert [p["id"] for p in archived] == [provider["id"]]
    assert await secret_doc(api, zone, provider["id"]) is None
    resource = await api.post(
        f"/v1/zones/{zone['id']}/resources",
        json={
            "name": "r",
            "scopes": ["read"],
            "credential_provider_id": provider["id"],
            "upstream_url": "https://u.example",
        },
    )
    assert_envelope(resource, 404, "provider_not_found")


# --- checks (34-37) ------------------------------------------------------------------------


async def test_check_unsupported_without_network(api: Api, local_https: LocalServer) -> None:
    zone = await api.zone()
    body = {
        "name": "k",
        "kind": "api_key",
        "config_json": {"header_name": "X", "api_key": "k"},
        "check": True,
    }
    assert_envelope(await api.post(base(zone), json=body), 400, "provider_check_unsupported")
    provider = await create(
        api, zone, name="k", kind="api_key", config_json={"header_name": "X", "api_key": "k"}
    )
    assert_envelope(
        await api.post(f"{base(zone)}/{provider['id']}/test"), 400, "provider_check_unsupported"
    )
    assert_envelope(await api.post(f"{base(zone)}/nope/test"), 404, "provider_not_found")
    assert local_https.requests == []
    keys = await api.runtime.redis.keys(f"rl:providertest:{zone['id']}")
    assert keys == []


async def test_test_route_against_local_token_server(
    egress_api: Api, local_https: LocalServer
) -> None:
    api = egress_api
    zone = await api.zone()
    provider = await create(
        api, zone, name="cc", kind=CC, config_json=cc_config(local_https, client_secret="s")
    )
    url = f"{base(zone)}/{provider['id']}/test"
    result = await api.post(url)
    assert result.status_code == 200
    assert result.json()["status"] == "ok"
    assert (await api.get(f"{base(zone)}/{provider['id']}")).json()[
        "connectivity_failed_at"
    ] is None
    local_https.route("POST", "/token", Reply(401, {"error": "invalid_client"}))
    failed = (await api.post(url)).json()
    assert failed["status"] == "auth_failed"
    row = (await api.get(f"{base(zone)}/{provider['id']}")).json()
    assert row["connectivity_failed_at"] is not None
    assert row["updated_at"] == provider["updated_at"]
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_scope"}))
    assert (await api.post(url)).json()["status"] == "config_error"
    audit = await sql(
        api,
        "SELECT payload_json FROM admin_audit_events WHERE path = :p AND status_code = 200",
        p=url,
    )
    assert audit[0][0]["change_kind"] == "action"


async def test_check_on_create(egress_api: Api, local_https: LocalServer) -> None:
    api = egress_api
    zone = await api.zone()
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_client"}))
    body = {
        "name": "cc",
        "kind": CC,
        "config_json": cc_config(local_https, client_secret="s"),
        "check": True,
    }
    failed = await api.post(base(zone), json=body)
    detail = assert_envelope(failed, 422, "provider_check_failed")
    assert detail["details"]["check"]["status"] == "auth_failed"
    assert set(detail["details"]["check"]) == {"status", "detail", "checked_at"}
    assert await sql(api, "SELECT id FROM providers WHERE zone_id = :z", z=zone["id"]) == []
    local_https.reset()
    passed = await api.post(base(zone), json=body)
    assert passed.status_code == 201
    assert passed.json()["connectivity_failed_at"] is None


async def test_check_rate_limit(egress_api: Api, local_https: LocalServer) -> None:
    api = egress_api
    zone = await api.zone()
    provider = await create(
        api, zone, name="cc", kind=CC, config_json=cc_config(local_https, client_secret="s")
    )
    url = f"{base(zone)}/{provider['id']}/test"
    for _ in range(10):
        assert (await api.post(url)).status_code == 200
    limited = await api.post(url)
    assert_envelope(limited, 429, "provider_test_rate_limited")
    assert limited.headers["retry-after"] == "60"


async def test_egress_refusals_through_the_api(api: Api, local_https: LocalServer) -> None:
    # default settings: localhost is not listed, so the loopback token endpoint is refused
    zone = await api.zone()
    provider = await create(
        api, zone, name="cc", kind=CC, config_json=cc_config(local_https, client_secret="s")
    )
    result = (await api.post(f"{base(zone)}/{provider['id']}/test")).json()
    assert result["status"] == "unreachable"
    config = cc_config(local_https, client_secret="s", allowed_token_hosts=["idp.example.com"])
    other = await create(api, zone, name="cc2", kind=CC, config_json=config)
    result = (await api.post(f"{base(zone)}/{other['id']}/test")).json()
    assert result["status"] == "config_error"
    assert local_https.requests == []


# --- discovery (38) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.example.com",
        "https://u:p@idp.example.com",
        "https://idp.example.com?x=1",
        "garbage",
        "",
    ],
)
async def test_discovery_invalid_issuers(api: Api, local_https: LocalServer, issuer: str) -> None:
    zone = await api.zone()
    response = await api.post(base(zone) + "/discovery", json={"issuer": issuer})
    assert_envelope(response, 400, "invalid_issuer")
    assert local_https.requests == []


async def test_discovery(egress_api: Api, local_https: LocalServer) -> None:
    api = egress_api
    zone = await api.zone()
    url = base(zone) + "/discovery"
    response = await api.post(url, json={"issuer": local_https.base_url + "/"})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["issuer"] == local_https.base_url
    assert "tls_client_auth" not in doc["token_endpoint_auth_methods_supported"]
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events WHERE path = :p"
        " AND status_code = 200",
        p=url,
    )
    assert (audit[0][0], audit[0][1], audit[0][2]["change_kind"]) == (
        "providers",
        "discovery",
        "create",
    )
    mismatch = local_https.discovery_document(issuer="https://other.example")
    local_https.route("GET", "/.well-known/openid-configuration", Reply(200, mismatch))
    local_https.route("GET", "/.well-known/oauth-authorization-server", Reply(200, mismatch))
    assert_envelope(
        await api.post(url, json={"issuer": local_https.base_url}), 422, "provider_discovery_failed"
    )
    for _ in range(8):
        await api.post(url, json={"issuer": local_https.base_url})
    limited = await api.post(url, json={"issuer": local_https.base_url})
    assert_envelope(limited, 429, "provider_discovery_rate_limited")
    assert_envelope(
        await api.post("/v1/zones/nope/providers/discovery", json={"issuer": local_https.base_url}),
        404,
        "zone_not_found",
    )


async def test_paging_and_archived_filter(api: Api) -> None:
    zone = await api.zone()
    ids = [(await create(api, zone, name=f"p{i}", kind="none"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        body = (await api.get(base(zone) + f"?limit=2{suffix}")).json()
        seen += [p["id"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5


async def test_zone_token_scope(make_api: AppFactory) -> None:
    api = await make_api()
    zone, other = await api.zone(), await api.zone()
    token = (await api.mint("write", zone=zone["id"]))["token"]
    assert (
        await api.post(base(zone), json={"name": "x", "kind": "none"}, token=token)
    ).status_code == 201
    assert_envelope(
        await api.post(base(other), json={"name": "x", "kind": "none"}, token=token),
        403,
        "admin_token_zone_mismatch",
    )
