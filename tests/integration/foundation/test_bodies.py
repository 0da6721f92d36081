"""Body transport and decoding through the whole pipeline (foundation §4)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import BOOTSTRAP_TOKEN, Api, AppFactory, assert_envelope
from tests.integration.foundation.harness import (
    APPROVE,
    DCR,
    LEAKS,
    POLICY_SETS,
    PROVIDERS,
    REJECT,
    guard_envelopes,
    needs_route,
    open_api,
    raw_exchange,
    serving,
    value,
)

JSON = {"content-type": "application/json"}
KIB = 1024


@pytest.fixture(autouse=True)
def _envelopes(monkeypatch: pytest.MonkeyPatch) -> None:
    # foundation §18 items 15 and 16: every error response of these tests is checked.
    guard_envelopes(monkeypatch)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module: these tests only add rows of their own."""
    async with open_api(database_dsn, redis_url) as built:
        yield built


async def zone_count(api: Api) -> int:
    return int(await value(api, "SELECT count(*) FROM zones"))


def request_head(port: int, path: str, headers: dict[str, str], *, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(payload: bytes, size: int = 16 * KIB) -> list[bytes]:
    out = [
        b"%x\r\n" % len(payload[i : i + size]) + payload[i : i + size] + b"\r\n"
        for i in range(0, len(payload), size)
    ]
    out.append(b"0\r\n\r\n")
    return out


def oversized(limit: int) -> bytes:
    """A JSON object of exactly `limit + 64 KiB` bytes."""
    total = limit + 64 * KIB
    prefix, suffix = b'{"name": "', b'"}'
    return prefix + b"x" * (total - len(prefix) - len(suffix)) + suffix


def assert_raw_envelope(response: Any, status: int, code: str) -> None:
    assert response.status, response
    assert response.status == status, (response.status, response.body[:300])
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/json")
    for leak in LEAKS:
        assert leak.encode() not in response.body


# foundation §18 item 6
@pytest.mark.parametrize("limit", [1_048_576, 1024])
async def test_oversized_body_gets_413_on_a_real_socket(make_api: AppFactory, limit: int) -> None:
    api = await make_api(api_body_limit_bytes=limit)
    before = await zone_count(api)
    body = oversized(limit)
    auth = f"Bearer {BOOTSTRAP_TOKEN}"
    async with serving(api.app) as port:
        declared = request_head(
            port,
            "/v1/zones",
            {
                "Authorization": auth,
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            },
        )
        pieces = [body[i : i + 16 * KIB] for i in range(0, len(body), 16 * KIB)]
        assert_raw_envelope(await raw_exchange(port, declared, pieces), 413, "payload_too_large")
        streamed = request_head(
            port,
            "/v1/zones",
            {
                "Authorization": auth,
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
            },
        )
        response = await raw_exchange(port, streamed, chunked(body))
        assert_raw_envelope(response, 413, "payload_too_large")
        # A body at the limit is read and validated as usual.
        fits = b'{"name": "fits", "x": "' + b"y" * (limit - 40) + b'"}'
        assert len(fits) <= limit
        at_limit = request_head(
            port,
            "/v1/zones",
            {
                "Authorization": auth,
                "Content-Type": "application/json",
                "Content-Length": str(len(fits)),
            },
        )
        assert_raw_envelope(await raw_exchange(port, at_limit, [fits]), 400, "invalid_zone")
    assert await zone_count(api) == before


# foundation §18 item 6 (in process: declared and streamed sizes)
async def test_oversized_body_in_process(make_api: AppFactory) -> None:
    api = await make_api(api_body_limit_bytes=1024)
    body = oversized(1024)
    assert_envelope(
        await api.post("/v1/zones", content=body, headers=JSON), 413, "payload_too_large"
    )

    async def stream() -> Any:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    response = await api.post("/v1/zones", content=stream(), headers=JSON)
    assert_envelope(response, 413, "payload_too_large")
    # Size is checked before the media type is trusted for anything else.
    response = await api.patch("/v1/zones/some-zone", content=body, headers=JSON)
    assert_envelope(response, 413, "payload_too_large")


# foundation §18 item 12 (real socket: the 415 arrives, the connection is not reset)
async def test_unsupported_media_type_on_a_real_socket(api: Api) -> None:
    before = await zone_count(api)
    body = b"name=" + b"z" * (256 * KIB)
    async with serving(api.app) as port:
        head = request_head(
            port,
            "/v1/zones",
            {
                "Authorization": f"Bearer {BOOTSTRAP_TOKEN}",
                "Content-Type": "text/plain",
                "Content-Length": str(len(body)),
            },
        )
        pieces = [body[i : i + 16 * KIB] for i in range(0, len(body), 16 * KIB)]
        response = await raw_exchange(port, head, pieces)
        assert_raw_envelope(response, 415, "unsupported_media_type")
        head = request_head(
            port,
            "/v1/zones",
            {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}", "Transfer-Encoding": "chunked"},
        )
        response = await raw_exchange(port, head, chunked(body))
        assert_raw_envelope(response, 415, "unsupported_media_type")
    assert await zone_count(api) == before


# foundation §18 item 12
async def test_non_json_media_types_are_415(api: Api) -> None:
    before = await zone_count(api)
    payload = b'{"name": "typed"}'
    for content_type in (
        "text/plain",
        "text/plain; charset=utf-8",
        "application/xml",
        "text/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "application/json; charset=latin-1",
    ):
        response = await api.post(
            "/v1/zones", content=payload, headers={"content-type": content_type}
        )
        assert_envelope(response, 415, "unsupported_media_type")
    # No content type at all, with a body.
    assert_envelope(await api.post("/v1/zones", content=payload), 415, "unsupported_media_type")
    assert_envelope(
        await api.post("/v1/zones", data={"name": "form"}), 415, "unsupported_media_type"
    )
    files = {"file": ("z.json", b'{"name": "multi"}', "application/json")}
    assert_envelope(await api.post("/v1/zones", files=files), 415, "unsupported_media_type")
    xml = b"<zone><name>x</name></zone>"
    response = await api.post("/v1/zones", content=xml, headers={"content-type": "application/xml"})
    assert_envelope(response, 415, "unsupported_media_type")
    assert await zone_count(api) == before
    # JSON with parameters and +json types are accepted.
    for content_type in ("application/json; charset=UTF-8", "application/merge-patch+json"):
        name = f"typed {secrets.token_hex(3)}"
        response = await api.post(
            "/v1/zones",
            content=f'{{"name": "{name}"}}'.encode(),
            headers={"content-type": content_type},
        )
        assert response.status_code == 201, response.text
    # A body sent with GET is never read or checked.
    response = await api.request(
        "GET", "/v1/zones", content=b"\xff not json", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200


MALFORMED = [
    (b'{"name": "trunc', "syntax"),
    (b'{"name": ', "syntax"),
    (b"{name: 1}", "syntax"),
    (b"{'name': 'x'}", "syntax"),
    (b'{"name": "x"} trailing', "syntax"),
    (b'{"name": "x",}', "syntax"),
    (b'{"name": NaN}', "non_finite_number"),
    (b'{"name": Infinity}', "non_finite_number"),
    (b'{"name": -Infinity}', "non_finite_number"),
    (b'{"name": 1e400}', "non_finite_number"),
    (b"\xef\xbb\xbf\x00\x01\x02\x03\xff", "invalid_utf8"),
    (b"\xef\xbb\xbf" + b'{"name": "bom"}', "invalid_utf8"),
    (b"\xff\xfe\xfd", "invalid_utf8"),
    (b'{"name": "\xc3\x28"}', "invalid_utf8"),
]


# foundation §18 item 7
async def test_malformed_bodies_are_invalid_json(api: Api) -> None:
    before = await zone_count(api)
    zone = await api.zone()
    before += 1
    for raw, reason in MALFORMED:
        for method, path in (("POST", "/v1/zones"), ("PATCH", f"/v1/zones/{zone['id']}")):
            response = await api.request(method, path, content=raw, headers=JSON)
            body = assert_envelope(response, 400, "invalid_json")
            assert body["details"]["reason"] == reason, (raw, body)
            if reason == "syntax":
                assert body["details"]["line"] >= 1
                assert body["details"]["column"] >= 1
    assert await zone_count(api) == before
    assert (await api.get(f"/v1/zones/{zone['id']}")).json() == zone


# foundation §18 item 8
async def test_duplicate_keys_and_depth(api: Api) -> None:
    before = await zone_count(api)
    cases = [
        (b'{"name": "a", "name": "b"}', "duplicate_key"),
        (b'{"name": "a", "slug": {"x": 1, "x": 1}}', "duplicate_key"),
        (b'{"name": "deep", "x": ' + b"[" * 64 + b"]" * 64 + b"}", "too_deep"),
        (b"[" * 65 + b"]" * 65, "too_deep"),
    ]
    for raw, reason in cases:
        body = assert_envelope(
            await api.post("/v1/zones", content=raw, headers=JSON), 400, "invalid_json"
        )
        assert body["details"]["reason"] == reason
    for depth in (5_000, 20_000):
        for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
            response = await api.post("/v1/zones", content=raw, headers=JSON)
            body = assert_envelope(response, 400, "invalid_json")
            assert body["details"]["reason"] == "too_deep"
        response = await api.post("/v1/zones", content=b"[" * depth, headers=JSON)
        assert_envelope(response, 400, "invalid_json")
    # 64 levels decode; the route then rejects the value with its own code.
    body = b'{"name": "ok", "x": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert_envelope(await api.post("/v1/zones", content=body, headers=JSON), 400, "invalid_zone")
    assert await zone_count(api) == before
    assert (await api.get("/health")).status_code == 200


# foundation §18 item 9
async def test_unsafe_strings_are_rejected_and_never_stored(api: Api) -> None:
    before = await zone_count(api)
    zone = await api.zone()
    marker = secrets.token_hex(4)
    for raw in (
        b'{"name": "nul\\u0000' + marker.encode() + b'"}',
        b'{"name": "lone\\ud800' + marker.encode() + b'"}',
        b'{"name": "low\\udc00"}',
        b'{"name": "ok", "extra\\u0000key": 1}',
        b'{"name": "ok", "nested": [{"x": "\\ud800"}]}',
    ):
        for method, path in (("POST", "/v1/zones"), ("PATCH", f"/v1/zones/{zone['id']}")):
            response = await api.request(method, path, content=raw, headers=JSON)
            body = assert_envelope(response, 400, "invalid_json")
            assert body["details"]["reason"] == "unsafe_string"
    assert await zone_count(api) == before + 1
    found = await value(api, "SELECT count(*) FROM zones WHERE name LIKE :m", m=f"%{marker}%")
    assert found == 0


# foundation §18 item 10
async def test_absent_body_on_a_route_that_requires_one(api: Api) -> None:
    for raw, headers in (
        (b"", JSON),
        (b"", {}),
        (b"null", JSON),
        (b"  null \n", JSON),
        (b"   ", JSON),
    ):
        body = assert_envelope(
            await api.post("/v1/zones", content=raw, headers=headers), 400, "invalid_zone"
        )
        assert body["details"]["issues"]
        body = assert_envelope(
            await api.post("/v1/admin-tokens", content=raw, headers=headers),
            400,
            "invalid_admin_token_request",
        )
        assert body["details"]["issues"]
    zone = await api.zone()
    response = await api.patch(f"/v1/zones/{zone['id']}", content=b"null", headers=JSON)
    assert_envelope(response, 400, "invalid_zone")
    # A chunked request whose body turns out empty is absent too.

    async def nothing() -> Any:
        if False:
            yield b""

    response = await api.post("/v1/zones", content=nothing(), headers=JSON)
    assert_envelope(response, 400, "invalid_zone")


# foundation §18 item 10 (approve/reject: an absent body is no reason)
@needs_route("POST", APPROVE)
@needs_route("POST", REJECT)
async def test_absent_body_on_approve_and_reject(api: Api) -> None:
    zone = await api.zone()
    for verb in ("approve", "reject"):
        path = f"/v1/zones/{zone['id']}/step-up-challenges/no-such-challenge/{verb}"
        for raw, headers in ((b"", JSON), (b"", {}), (b"null", JSON), (b"{}", JSON)):
            response = await api.post(path, content=raw, headers=headers)
            assert_envelope(response, 404, "challenge_not_found")
        assert_envelope(await api.post(path), 404, "challenge_not_found")


# foundation §18 item 11
async def test_non_object_bodies_get_the_route_code(api: Api) -> None:
    zone = await api.zone()
    for raw in (b"[]", b'[{"name": "x"}]', b'"name"', b"42", b"-1.5", b"true", b"false"):
        body = assert_envelope(
            await api.post("/v1/zones", content=raw, headers=JSON), 400, "invalid_zone"
        )
        assert body["details"]["issues"]
        response = await api.patch(f"/v1/zones/{zone['id']}", content=raw, headers=JSON)
        assert_envelope(response, 400, "invalid_zone")
        response = await api.post("/v1/admin-tokens", content=raw, headers=JSON)
        assert_envelope(response, 400, "invalid_admin_token_request")


# foundation §18 item 13 (strict bodies)
async def test_strict_bodies_reject_unknown_and_server_keys(api: Api) -> None:
    before = await zone_count(api)
    zone = await api.zone()
    before += 1
    for key in (
        "__proto__",
        "constructor",
        "owner_account_id",
        "id",
        "archived_at",
        "zone_id",
        "created_by",
        "created_at",
        "updated_at",
        "prototype",
    ):
        extra: dict[str, Any] = {key: {} if key == "__proto__" else "x"}
        body = assert_envelope(
            await api.post("/v1/zones", json={"name": "strict", **extra}), 400, "invalid_zone"
        )
        assert [key] in [i["path"] for i in body["details"]["issues"]], body
        response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "renamed", **extra})
        assert_envelope(response, 400, "invalid_zone")
        if key != "zone_id":  # a field of T1
            response = await api.post(
                "/v1/admin-tokens", json={"name": "t", "scope": "global", **extra}
            )
            assert_envelope(response, 400, "invalid_admin_token_request")
    response = await api.post(
        "/v1/admin-tokens", json={"name": "t", "scope": "global", "token": "cat_mine"}
    )
    assert_envelope(response, 400, "invalid_admin_token_request")
    assert await zone_count(api) == before
    assert (await api.get(f"/v1/zones/{zone['id']}")).json() == zone


# foundation §18 item 13 (lenient bodies)
@pytest.mark.parametrize(
    ("collection", "fields"),
    [
        pytest.param("providers", {"kind": "none"}, marks=needs_route("POST", PROVIDERS)),
        pytest.param("policy-sets", {}, marks=needs_route("POST", POLICY_SETS)),
    ],
)
async def test_lenient_bodies_ignore_unknown_and_server_keys(
    api: Api, collection: str, fields: dict[str, Any]
) -> None:
    zone = await api.zone()
    other = await api.zone()
    name = f"lenient {secrets.token_hex(3)}"
    response = await api.post(
        f"/v1/zones/{zone['id']}/{collection}",
        headers={"x-caracal-authorized-by": "ops@example.test"},
        json={
            "name": name,
            **fields,
            "__proto__": {"polluted": True},
            "constructor": {"prototype": {}},
            "owner_account_id": "acct",
            "id": "chosen-id",
            "zone_id": other["id"],
            "created_by": "mallory",
            "created_at": "2000-01-01T00:00:00Z",
            "archived_at": "2000-01-01T00:00:00Z",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] != "chosen-id"
    assert created["zone_id"] == zone["id"]
    assert created["name"] == name
    assert created["created_by"] == "ops@example.test"
    assert not created["created_at"].startswith("2000-")
    assert created.get("archived_at") is None
    assert "polluted" not in created
    assert "owner_account_id" not in created
    got = await api.get(f"/v1/zones/{zone['id']}/{collection}/{created['id']}")
    assert got.status_code == 200, got.text
    assert got.json()["zone_id"] == zone["id"]
    listed = await api.get(f"/v1/zones/{other['id']}/{collection}")
    assert listed.status_code == 200
    assert listed.json()["items"] == []


# foundation §18 item 14
@needs_route("POST", DCR)
async def test_integer_fields_reject_non_integers(api: Api) -> None:
    zone = await api.zone(dcr_enabled=True)
    path = f"/v1/zones/{zone['id']}/applications/dcr"
    for bad in (b"1.5", b'"600"', b"true", b"3600.0", b"36e2", b"null", b"[600]"):
        raw = b'{"name": "int check", "expires_in": ' + bad + b"}"
        body = assert_envelope(
            await api.post(path, content=raw, headers=JSON), 400, "invalid_application"
        )
        assert ["expires_in"] in [i["path"] for i in body["details"]["issues"]]
    response = await api.post(path, json={"name": "int check", "expires_in": 600})
    assert response.status_code == 201, response.text
