"""Provider connections C1–C5 and the provider-grants aliases (objects.md §7, items 54–59)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from caracal_api.secret_store.refs import ACCESS_TOKEN_AAD, REFRESH_TOKEN_AAD
from tests.conftest import Api, assert_envelope
from tests.fixtures.http_servers import LocalServer, Reply
from tests.integration.objects.conftest import sql

AC = "oauth2_authorization_code"
CONNECTION_KEYS = [
    "id", "zone_id", "subject_id", "provider_id", "status", "expires_at", "created_at",
    "updated_at",
]  # fmt: skip
LIST_KEYS = [
    "id", "zone_id", "subject_id", "provider_id", "status", "expires_at", "refreshed_at",
    "renewable", "created_at", "updated_at",
]  # fmt: skip
ALIASES = ["provider-connections", "provider-grants"]


def ac_config(server: LocalServer, **extra: Any) -> dict[str, Any]:
    return {
        "authorization_endpoint": server.url("/authorize?tenant=t1"),
        "token_endpoint": server.url("/token"),
        "redirect_uri": "https://app.example.test/oauth/cb",
        "client_id": "cid",
        "client_secret": "csecret",
        "scopes": ["read", "write"],
        **extra,
    }


async def make_provider(api: Api, zone: dict[str, Any], server: LocalServer, **extra: Any) -> str:
    r = await api.post(
        f"/v1/zones/{zone['id']}/providers",
        json={"name": f"ac-{len(extra)}", "kind": AC, "config_json": ac_config(server, **extra)},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def url(zone: dict[str, Any], alias: str, suffix: str = "") -> str:
    return f"/v1/zones/{zone['id']}/{alias}{suffix}"


@pytest.mark.parametrize("alias", ALIASES)
async def test_import_list_and_upsert(api: Api, local_https: LocalServer, alias: str) -> None:
    zone = await api.zone()
    pid = await make_provider(api, zone, local_https)
    body = {"provider_id": pid, "access_token": "at-1", "refresh_token": "rt-1"}
    first = await api.post(url(zone, alias), json={**body, "expires_at": "2030-01-01T00:00:00Z"})
    assert first.status_code == 201, first.text
    conn = first.json()
    assert list(conn) == CONNECTION_KEYS
    assert conn["subject_id"] == "caracal:shared"
    assert conn["expires_at"] == "2030-01-01T00:00:00.000000Z"
    assert "at-1" not in first.text
    listed = (await api.get(url(zone, alias))).json()["items"]
    assert list(listed[0]) == LIST_KEYS
    assert listed[0]["renewable"] is True
    assert "at-1" not in json.dumps(listed)
    second = await api.post(url(zone, alias), json={**body, "access_token": "at-2"})
    assert second.json()["id"] == conn["id"]
    rows = await sql(
        api,
        "SELECT status, refresh_token_version, access_token_ct FROM provider_connections"
        " WHERE zone_id = :z",
        z=zone["id"],
    )
    assert len(rows) == 1
    assert rows[0][0] == "active"
    assert rows[0][1] == 1
    keys = api.runtime.services["secret_store"].keys
    assert keys.open(bytes(rows[0][2]), ACCESS_TOKEN_AAD) == b"at-2"
    audit = await sql(
        api,
        "SELECT entity_type, payload_json FROM admin_audit_events WHERE path = :p"
        " AND status_code = 201 ORDER BY occurred_at LIMIT 1",
        p=url(zone, alias),
    )
    assert audit[0][0] == "provider-connections"
    assert audit[0][1]["secret_rotated"] is True
    filtered = (await api.get(url(zone, alias, f"?provider_id={pid}&status=active"))).json()
    assert len(filtered["items"]) == 1
    assert_envelope(await api.get(url(zone, alias, "?status=")), 400, "invalid_query")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"access_token": "a"}, 400, "invalid_provider_connection"),
        ({"provider_id": "P", "access_token": ""}, 400, "invalid_provider_connection"),
        ({"provider_id": "P"}, 400, "invalid_provider_connection"),
        (
            {"provider_id": "P", "access_token": "a", "expires_at": "tomorrow"},
            400,
            "invalid_provider_connection",
        ),
        ({"provider_id": "missing", "access_token": "a"}, 404, "provider_not_found"),
    ],
)
async def test_import_failures(
    api: Api, local_https: LocalServer, body: dict[str, Any], status: int, code: str
) -> None:
    zone = await api.zone()
    pid = await make_provider(api, zone, local_https)
    body = {k: (pid if v == "P" else v) for k, v in body.items()}
    assert_envelope(await api.post(url(zone, "provider-connections"), json=body), status, code)


async def test_import_with_api_key_provider(api: Api) -> None:
    zone = await api.zone()
    r = await api.post(
        f"/v1/zones/{zone['id']}/providers",
        json={"name": "k", "kind": "api_key", "config_json": {"header_name": "X", "api_key": "k"}},
    )
    body = {"provider_id": r.json()["id"], "access_token": "a"}
    response = await api.post(url(zone, "provider-connections"), json=body)
    assert_envelope(response, 400, "provider_connection_unsupported")


@pytest.mark.parametrize("alias", ALIASES)
async def test_authorize(api: Api, local_https: LocalServer, alias: str) -> None:
    zone = await api.zone()
    pid = await make_provider(
        api, zone, local_https, authorization_params={"prompt": "consent", "tenant": "t2"}
    )
    response = await api.post(url(zone, alias, "/oauth/authorize"), json={"provider_id": pid})
    assert response.status_code == 200, response.text
    body = response.json()
    parts = urlsplit(body["authorization_url"])
    assert parts.scheme == "https"
    query = parse_qs(parts.query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["cid"]
    assert query["redirect_uri"] == ["https://app.example.test/oauth/cb"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"][0]
    assert query["state"] == [body["state"]]
    assert query["scope"] == ["read write"]
    assert query["tenant"] == ["t2"]
    assert query["prompt"] == ["consent"]
    assert "client_secret" not in body["authorization_url"]
    assert "csecret" not in response.text
    assert len(body["state"]) >= 32
    key = f"api:provider_oauth_state:{body['state']}"
    ttl = await api.runtime.redis.ttl(key)
    assert 590 <= ttl <= 600
    stored = json.loads(await api.runtime.redis.get(key))
    digest = hashlib.sha256(stored["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"][0]
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events WHERE path = :p"
        " AND status_code = 200",
        p=url(zone, alias, "/oauth/authorize"),
    )
    assert (audit[0][0], audit[0][1], audit[0][2]["change_kind"]) == (
        "provider-connections", "oauth", "action",
    )  # fmt: skip


async def test_authorize_failures(api: Api, local_https: LocalServer) -> None:
    zone = await api.zone()
    r = await api.post(
        f"/v1/zones/{zone['id']}/providers",
        json={"name": "k", "kind": "api_key", "config_json": {"header_name": "X", "api_key": "k"}},
    )
    path = url(zone, "provider-connections", "/oauth/authorize")
    assert_envelope(
        await api.post(path, json={"provider_id": r.json()["id"]}),
        400,
        "provider_connection_unsupported",
    )
    assert_envelope(await api.post(path, json={}), 400, "invalid_provider_oauth_authorize")
    pid = await make_provider(api, zone, local_https)
    await sql(
        api,
        "UPDATE providers SET config_json = jsonb_set(config_json, '{authorization_endpoint}',"
        " '\"http://idp.example/authorize\"') WHERE id = :id",
        id=pid,
    )
    assert_envelope(
        await api.post(path, json={"provider_id": pid}),
        400,
        "provider_authorization_endpoint_invalid",
    )


@pytest.mark.parametrize("alias", ALIASES)
async def test_revoke(egress_api: Api, local_https: LocalServer, alias: str) -> None:
    api = egress_api
    zone = await api.zone()
    pid = await make_provider(
        api, zone, local_https, revocation_endpoint=local_https.url("/revoke")
    )
    await api.post(
        url(zone, alias), json={"provider_id": pid, "access_token": "at", "refresh_token": "rt"}
    )
    response = await api.post(url(zone, alias, "/revoke"), json={"provider_id": pid})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "revoked"
    assert body["upstream_revocation"] == "revoked"
    seen = local_https.requests_to("/revoke")[-1]
    assert seen.form == {"token": "rt", "token_type_hint": "refresh_token"}
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert_envelope(
        await api.post(url(zone, alias, "/revoke"), json={"provider_id": pid}),
        404,
        "provider_connection_not_found",
    )
    audit = await sql(
        api,
        "SELECT entity_type, entity_id, payload_json FROM admin_audit_events WHERE path = :p"
        " AND status_code = 200",
        p=url(zone, alias, "/revoke"),
    )
    assert (audit[0][0], audit[0][1], audit[0][2]["change_kind"]) == (
        "provider-connections", "revoke", "create",
    )  # fmt: skip


async def test_revoke_outcomes(egress_api: Api, local_https: LocalServer) -> None:
    api = egress_api
    zone = await api.zone()
    plain = await make_provider(api, zone, local_https)
    await api.post(
        url(zone, "provider-connections"), json={"provider_id": plain, "access_token": "at"}
    )
    r = await api.post(url(zone, "provider-connections", "/revoke"), json={"provider_id": plain})
    assert r.json()["upstream_revocation"] == "unsupported"
    failing = await make_provider(
        api, zone, local_https, revocation_endpoint=local_https.url("/revoke")
    )
    local_https.route("POST", "/revoke", Reply(400, {"error": "unsupported_token_type"}))
    await api.post(
        url(zone, "provider-connections"), json={"provider_id": failing, "access_token": "at"}
    )
    r = await api.post(url(zone, "provider-connections", "/revoke"), json={"provider_id": failing})
    assert r.status_code == 200
    assert r.json()["upstream_revocation"] == "failed"
    assert local_https.requests_to("/revoke")[-1].form["token_type_hint"] == "access_token"
    assert_envelope(
        await api.post(url(zone, "provider-connections", "/revoke"), json={}),
        400,
        "invalid_provider_connection_revoke",
    )


async def authorize(api: Api, zone: dict[str, Any], pid: str) -> str:
    r = await api.post(
        url(zone, "provider-connections", "/oauth/authorize"), json={"provider_id": pid}
    )
    return str(r.json()["state"])


@pytest.mark.parametrize("alias", ALIASES)
async def test_callback_exchange(egress_api: Api, local_https: LocalServer, alias: str) -> None:
    api = egress_api
    zone = await api.zone()
    pid = await make_provider(api, zone, local_https)
    state = await authorize(api, zone, pid)
    path = url(zone, alias, "/oauth/callback")
    response = await api.get(f"{path}?state={state}&code=the-code", token="")
    assert response.status_code == 201, response.text
    conn = response.json()
    assert list(conn) == CONNECTION_KEYS
    assert conn["provider_id"] == pid
    assert conn["expires_at"] is not None
    seen = local_https.requests_to("/token")[-1]
    assert seen.form["grant_type"] == "authorization_code"
    assert seen.form["code"] == "the-code"
    assert seen.form["redirect_uri"] == "https://app.example.test/oauth/cb"
    assert 43 <= len(seen.form["code_verifier"]) <= 128
    rows = await sql(
        api,
        "SELECT access_token_ct, refresh_token_ct FROM provider_connections WHERE id = :id",
        id=conn["id"],
    )
    keys = api.runtime.services["secret_store"].keys
    assert keys.open(bytes(rows[0][0]), ACCESS_TOKEN_AAD) == b"at-local-0001"
    assert keys.open(bytes(rows[0][1]), REFRESH_TOKEN_AAD) == b"rt-local-0001"
    audit = await sql(
        api,
        "SELECT actor_id, actor_name, actor_scope, path, entity_type, entity_id, payload_json"
        " FROM admin_audit_events WHERE path = :p AND status_code = 201",
        p=path,
    )
    assert audit[0][:6] == (None, None, None, path, "provider-connections", "oauth")
    assert audit[0][6]["change_kind"] == "action"
    # the state is single use
    again = await api.get(f"{path}?state={state}&code=the-code", token="")
    assert_envelope(again, 400, "oauth_state_expired")


async def test_callback_failures(egress_api: Api, local_https: LocalServer) -> None:
    api = egress_api
    zone, other = await api.zone(), await api.zone()
    pid = await make_provider(api, zone, local_https)
    path = url(zone, "provider-connections", "/oauth/callback")
    assert_envelope(await api.get(path, token=""), 400, "invalid_oauth_callback")
    assert_envelope(await api.get(f"{path}?state=short", token=""), 400, "invalid_oauth_callback")
    assert_envelope(
        await api.get(f"{path}?state={'x' * 40}&code=c", token=""), 400, "oauth_state_expired"
    )
    state = await authorize(api, zone, pid)
    wrong = url(other, "provider-connections", "/oauth/callback")
    assert_envelope(
        await api.get(f"{wrong}?state={state}&code=c", token=""), 400, "oauth_state_mismatch"
    )
    state = await authorize(api, zone, pid)
    denied = await api.get(
        f"{path}?state={state}&error=access_denied&error_description=nope", token=""
    )
    body = assert_envelope(denied, 400, "provider_oauth_denied")
    assert body["error_description"] == "nope"
    state = await authorize(api, zone, pid)
    assert_envelope(
        await api.get(f"{path}?state={state}", token=""), 400, "authorization_code_required"
    )
    state = await authorize(api, zone, pid)
    local_https.route("POST", "/token", Reply(200, {"access_token": "a", "token_type": "mac"}))
    assert_envelope(
        await api.get(f"{path}?state={state}&code=c", token=""),
        502,
        "provider_token_type_unsupported",
    )
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_grant"}))
    state = await authorize(api, zone, pid)
    assert_envelope(
        await api.get(f"{path}?state={state}&code=c", token=""),
        502,
        "provider_token_exchange_failed",
    )
    local_https.route("POST", "/token", Reply(200, b"not json"))
    state = await authorize(api, zone, pid)
    assert_envelope(
        await api.get(f"{path}?state={state}&code=c", token=""),
        502,
        "provider_token_response_invalid",
    )


async def test_callback_host_not_allowed_makes_no_request(
    egress_api: Api, local_https: LocalServer
) -> None:
    api = egress_api
    zone = await api.zone()
    pid = await make_provider(api, zone, local_https, allowed_token_hosts=["idp.example.com"])
    state = await authorize(api, zone, pid)
    path = url(zone, "provider-connections", "/oauth/callback")
    response = await api.get(f"{path}?state={state}&code=c", token="")
    assert_envelope(response, 400, "provider_token_endpoint_not_allowed")
    assert local_https.requests_to("/token") == []


async def test_callback_html(egress_api: Api, local_https: LocalServer) -> None:
    api = egress_api
    zone = await api.zone()
    pid = await make_provider(api, zone, local_https)
    state = await authorize(api, zone, pid)
    path = url(zone, "provider-grants", "/oauth/callback")
    html = {"Accept": "text/html,application/xhtml+xml"}
    denied = await api.get(f"{path}?state={state}&error=access_denied", token="", headers=html)
    assert denied.status_code == 400
    assert denied.headers["content-type"] == "text/html; charset=utf-8"
    assert denied.headers["content-security-policy"] == "default-src 'none'"
    assert "OAuth authorization denied" in denied.text
    assert denied.headers["x-request-id"]
    state = await authorize(api, zone, pid)
    ok = await api.get(f"{path}?state={state}&code=c", token="", headers=html)
    assert ok.status_code == 201
    assert "OAuth provider connected" in ok.text
    failed = await api.get(
        f"{path}?state={'y' * 40}&code=c", token="", headers={"Accept": "text/html"}
    )
    assert failed.status_code == 400
    assert "OAuth callback failed" in failed.text
    both = await api.get(
        f"{path}?state={'y' * 40}", token="", headers={"Accept": "text/html, application/json"}
    )
    assert both.json()["error"] == "oauth_state_expired"
