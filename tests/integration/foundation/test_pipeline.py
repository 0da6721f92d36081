"""Request ids, shared headers, route resolution and the error envelope (foundation §2–§5)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.conftest import Api, AppFactory, assert_envelope, base_settings
from tests.integration.foundation.harness import (
    ID_RE,
    UUID7_RE,
    V1_HEADERS,
    bearer,
    check_error_response,
    clear_of_minute_edge,
    client_as,
    free_port,
    guard_envelopes,
    open_api,
    random_ip,
)


@pytest.fixture(autouse=True)
def _envelopes(monkeypatch: pytest.MonkeyPatch) -> None:
    # foundation §18 items 15 and 16: every error response of these tests is checked.
    guard_envelopes(monkeypatch)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module: these tests only add rows of their own."""
    async with open_api(database_dsn, redis_url) as built:
        yield built


# foundation §18 item 1
async def test_valid_request_id_is_echoed_on_every_status(api: Api, make_api: AppFactory) -> None:
    token = (await api.mint("write"))["token"]
    limited = await make_api(api_body_limit_bytes=1024, api_v1_rate_limit_per_min=4)
    await clear_of_minute_edge()
    rid = "client-req_1.2:abc"
    headers = {"x-request-id": rid, **bearer(token)}
    seen: dict[int, httpx.Response] = {}
    async with client_as(limited, random_ip()) as client:
        seen[200] = await client.get("/v1/zones", headers=headers)
        seen[401] = await client.get("/v1/zones", headers={"x-request-id": rid})
        seen[404] = await client.get("/v1/definitely-not-a-route", headers=headers)
        seen[413] = await client.post(
            "/v1/zones",
            content=b'{"name": "' + b"x" * 2048 + b'"}',
            headers={**headers, "content-type": "application/json"},
        )
        seen[429] = await client.get("/v1/zones", headers=headers)
    for status, response in seen.items():
        assert response.status_code == status, response.text
        assert response.headers["x-request-id"] == rid
        if status >= 400:
            assert response.json()["request_id"] == rid
    assert seen[413].json()["error"] == "payload_too_large"
    assert seen[429].json()["error"] == "rate_limited"
    assert (await api.get("/health", headers={"x-request-id": rid})).headers["x-request-id"] == rid
    # The longest valid id (128 characters) is kept as well.
    longest = "a" * 128
    response = await api.get("/v1/zones", headers={"x-request-id": longest})
    assert response.headers["x-request-id"] == longest


# foundation §18 item 2
async def test_invalid_request_id_is_replaced(api: Api) -> None:
    invalid: list[str | bytes] = [
        "has spaces",
        "<script>",
        "a<b",
        "a" * 129,
        "semi;colon",
        "slash/x",
        "",
        "é-accent".encode(),
        b"\xff\xfe",
    ]
    for sent in invalid:
        headers: dict[str, Any] = {"x-request-id": sent}
        for response in (
            await api.get("/v1/zones", headers=headers),
            await api.get("/v1/zones", token="", headers=headers),
            await api.get("/health", headers=headers),
        ):
            rid = response.headers["x-request-id"]
            assert rid != sent
            assert ID_RE.fullmatch(rid)
            assert UUID7_RE.fullmatch(rid)
            if response.status_code >= 400:
                assert response.json()["request_id"] == rid


# foundation §18 item 2
async def test_missing_request_id_is_generated_and_unique(api: Api) -> None:
    ids = set()
    for _ in range(3):
        response = await api.get("/v1/zones")
        assert UUID7_RE.fullmatch(response.headers["x-request-id"])
        ids.add(response.headers["x-request-id"])
        failed = await api.get("/v1/zones", token="")
        assert UUID7_RE.fullmatch(failed.headers["x-request-id"])
        ids.add(failed.headers["x-request-id"])
    assert len(ids) == 6


# foundation §18 item 3
async def test_security_headers_on_v1_only(api: Api) -> None:
    ok = await api.get("/v1/zones", headers={"Origin": "https://evil.example"})
    unauthenticated = await api.get("/v1/zones", token="")
    not_found = await api.get("/v1/nope")
    assert ok.status_code == 200
    assert unauthenticated.status_code == 401
    assert not_found.status_code == 404
    for response in (ok, unauthenticated, not_found):
        for name, expected in V1_HEADERS.items():
            assert response.headers.get(name) == expected, (response.status_code, name)
        assert not any(h.startswith("access-control-") for h in response.headers)
        assert response.headers["content-type"].startswith("application/json")
    health = await api.get("/health", headers={"Origin": "https://evil.example"})
    assert health.status_code == 200
    assert health.json() == {"ok": True}
    for name in V1_HEADERS:
        assert name not in health.headers
    assert not any(h.startswith("access-control-") for h in health.headers)


# foundation §18 item 4
async def test_unknown_v1_path_needs_auth_first(api: Api) -> None:
    assert_envelope(await api.get("/v1/definitely-not-a-route"), 404, "not_found")
    assert_envelope(
        await api.get("/v1/definitely-not-a-route", token=""), 401, "invalid_admin_token"
    )
    assert_envelope(
        await api.get("/v1/definitely-not-a-route", token="cat_unknown"),
        401,
        "invalid_admin_token",
    )
    assert_envelope(await api.post("/v1/nope/deeper", token=""), 401, "invalid_admin_token")
    # Exact matching: no trailing-slash redirect, no case folding, literal segments undecoded.
    for path in ("/v1/zones/", "/v1/Zones", "/v1/zone%73", "/v1", "/v1/"):
        assert_envelope(await api.get(path), 404, "not_found")
        assert_envelope(await api.get(path, token=""), 401, "invalid_admin_token")
    # Outside /v1 unknown paths are 404 without authentication.
    assert_envelope(await api.get("/definitely-not-a-route", token=""), 404, "not_found")


# foundation §18 item 5
async def test_known_path_other_method_is_405_with_allow(api: Api) -> None:
    for method in ("PUT", "OPTIONS", "PATCH", "DELETE"):
        response = await api.request(method, "/v1/zones")
        assert_envelope(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET, HEAD, POST"
    preflight = await api.request(
        "OPTIONS",
        "/v1/zones",
        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"},
    )
    assert_envelope(preflight, 405, "method_not_allowed")
    assert not any(h.startswith("access-control-") for h in preflight.headers)
    zone = await api.zone()
    response = await api.request("PUT", f"/v1/zones/{zone['id']}")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, PATCH, DELETE"
    response = await api.request("PATCH", "/v1/admin-tokens")
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert_envelope(await api.request("PUT", "/health"), 405, "method_not_allowed")
    # Authentication still comes first.
    assert_envelope(await api.request("PUT", "/v1/zones", token=""), 401, "invalid_admin_token")


# foundation §18 item 5 (HEAD behaves as GET without a body; overrides are ignored)
async def test_head_and_method_override_headers(api: Api) -> None:
    head = await api.request("HEAD", "/v1/zones")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["cache-control"] == "no-store"
    created = await api.post(
        "/v1/zones",
        json={"name": "override check"},
        headers={
            "X-HTTP-Method-Override": "DELETE",
            "X-Method-Override": "PUT",
            "X-HTTP-Method": "GET",
        },
    )
    assert created.status_code == 201
    response = await api.get(
        f"/v1/zones/{created.json()['id']}", headers={"X-HTTP-Method-Override": "DELETE"}
    )
    assert response.status_code == 200


# foundation §18 item 15
async def test_database_outage_answers_503_without_internals(redis_url: str) -> None:
    from caracal_api.app import create_app
    from caracal_api.runtime import Runtime

    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings = dataclasses.replace(
        base_settings(dead, redis_url), db_pool_timeout_ms=500, db_statement_timeout_ms=500
    )
    redis = Redis.from_url(redis_url, socket_connect_timeout=1)
    runtime = Runtime.build(settings, dead, redis, embedded_postgres=False, embedded_redis=False)
    app = create_app(runtime)
    try:
        async with app.app.router.lifespan_context(app.app):
            api = Api(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40001)),
                    base_url="http://caracal.test",
                ),
                app,
                runtime,
            )
            async with api.client:
                response = await api.get("/v1/zones")
                assert_envelope(response, 503, "database_unavailable")
                check_error_response(response)
                # No 401 either: a lookup that cannot run is not a failed authentication.
                response = await api.post("/v1/zones", json={"name": "x"})
                assert_envelope(response, 503, "database_unavailable")
                health = await api.get("/health", token="")
                assert health.status_code == 200
    finally:
        await runtime.close()


# foundation §18 item 15
async def test_client_mistakes_never_leak_internals(api: Api) -> None:
    hostile = "x'); DROP TABLE zones; --"
    created = await api.post("/v1/zones", json={"name": hostile, "slug": "dup-slug-check"})
    if created.status_code == 409:  # a rerun on the same database
        assert created.json()["error"] == "zone_slug_conflict"
    else:
        assert created.status_code == 201
        assert created.json()["name"] == hostile
    conflict = await api.post("/v1/zones", json={"name": "again", "slug": "dup-slug-check"})
    body = check_error_response(conflict)
    assert (conflict.status_code, body["error"]) == (409, "zone_slug_conflict")
    for path in (
        "/v1/zones/" + "%27%20OR%201%3D1--",
        "/v1/zones/%00",
        "/v1/zones/" + "a" * 129,
        "/v1/zones?limit=%27",
        "/v1/zones?cursor=%27%3B%20SELECT%201",
        "/v1/zones?cursor=eyJ0cyI6Inh4IiwiaWQiOiJ5In0",
    ):
        response = await api.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        check_error_response(response)
    # `..` is a syntactically valid id that names nothing.
    assert_envelope(await api.get("/v1/zones/%2E%2E"), 404, "zone_not_found")


# foundation §18 item 15 (an unexpected failure: a generic 500, details only in the log)
async def test_unexpected_errors_are_generic(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.exc import ProgrammingError

    from caracal_api.zones import service

    zone = await api.zone()
    failures: list[Exception] = [
        RuntimeError('Traceback (most recent call last): File "x.py", asyncpg SELECT 1'),
        ProgrammingError(
            "SELECT name FROM zones WHERE id = $1", {}, Exception("asyncpg UndefinedColumnError")
        ),
    ]
    for failure in failures:

        async def broken(*_args: object, failure: Exception = failure) -> None:
            raise failure

        monkeypatch.setattr(service, "get_zone", broken)
        caplog.clear()
        response = await api.get(f"/v1/zones/{zone['id']}")
        body = assert_envelope(response, 500, "internal_error")
        check_error_response(response)
        assert "details" not in body
        logged = [r for r in caplog.records if r.levelname == "ERROR"]
        assert any(getattr(r, "request_id", None) == body["request_id"] for r in logged)
