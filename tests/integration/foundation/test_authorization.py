"""Capabilities, zone scope, reserved zones and reserved values (foundation §7)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import BOOTSTRAP_TOKEN, Api, assert_envelope
from tests.integration.foundation.harness import (
    APPLICATION,
    APPLICATIONS,
    APPROVE,
    CLIENT_SECRET,
    POLICIES,
    PROVIDERS,
    REJECT,
    RESOURCES,
    TEMPLATES,
    VALID_POLICY,
    VALIDATE,
    guard_envelopes,
    needs_route,
    open_api,
    route_registered,
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


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def tokens(api: Api) -> dict[str, str]:
    """Global read, write and approve tokens shared by the module."""
    return {
        cap: (await api.mint(cap, name=f"global {cap}"))["token"]
        for cap in ("read", "write", "approve")
    }


def hexname(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def application(api: Api, zone_id: str, name: str | None = None) -> dict[str, Any]:
    response = await api.post(
        f"/v1/zones/{zone_id}/applications",
        json={"name": name or hexname("app"), "registration_method": "managed"},
        token=BOOTSTRAP_TOKEN,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def ok(response: httpx.Response, status: int = 200) -> None:
    assert response.status_code == status, response.text


# foundation §18 item 26
async def test_read_token_reads_but_never_writes(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    other_token = await api.mint("write")
    read = tokens["read"]
    zid = zone["id"]
    for path in (
        "/v1/zones",
        f"/v1/zones/{zid}",
        f"/v1/zones/{zid}/dcr-status",
        f"/v1/zones/{zid}/overview",
        "/v1/admin-tokens",
    ):
        ok(await api.get(path, token=read))
        ok(await api.request("HEAD", path, token=read))
    refused = [
        ("POST", "/v1/zones", {"name": "nope"}),
        ("PATCH", f"/v1/zones/{zid}", {"name": "nope"}),
        ("DELETE", f"/v1/zones/{zid}", None),
        ("POST", "/v1/admin-tokens", {"name": "t", "scope": "global", "capability": "read"}),
        ("DELETE", f"/v1/admin-tokens/{other_token['id']}", None),
    ]
    for method, path, body in refused:
        response = await api.request(method, path, token=read, json=body)
        assert_envelope(response, 403, "admin_token_read_only")
    # Nothing changed.
    assert (await api.get(f"/v1/zones/{zid}")).json() == zone
    ok(await api.get("/v1/zones", token=other_token["token"]))


# foundation §18 item 26 (applications)
@needs_route("POST", APPLICATIONS)
@needs_route("PATCH", APPLICATION)
@needs_route("DELETE", APPLICATION)
async def test_read_token_cannot_write_applications(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    app = await application(api, zone["id"])
    read = tokens["read"]
    base = f"/v1/zones/{zone['id']}/applications"
    ok(await api.get(base, token=read))
    ok(await api.get(f"{base}/{app['id']}", token=read))
    for method, path, body in (
        ("POST", base, {"name": "x", "registration_method": "managed"}),
        ("PATCH", f"{base}/{app['id']}", {"name": "renamed"}),
        ("DELETE", f"{base}/{app['id']}", None),
        ("POST", f"{base}/{app['id']}/rotate-secret", None),
        ("POST", f"{base}/dcr", {"name": "dcr"}),
    ):
        response = await api.request(method, path, token=read, json=body)
        assert_envelope(response, 403, "admin_token_read_only")


# foundation §18 item 26 (validate is a global read path)
@needs_route("POST", VALIDATE)
async def test_read_and_zone_tokens_may_validate(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    for token in (
        tokens["read"],
        (await api.mint("read", zone=zone["id"]))["token"],
        tokens["approve"],
    ):
        response = await api.post(
            "/v1/policies/validate", token=token, json={"content": VALID_POLICY}
        )
        assert response.status_code == 200, response.text
        assert response.json()["valid"] is True


# foundation §18 item 27
@needs_route("GET", CLIENT_SECRET)
@needs_route("POST", APPLICATIONS)
async def test_client_secret_reveal_needs_write(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    app = await application(api, zone["id"])
    path = f"/v1/zones/{zone['id']}/applications/{app['id']}/client-secret"
    read = tokens["read"]
    approve = tokens["approve"]
    write = tokens["write"]
    assert_envelope(await api.get(path, token=read), 403, "admin_token_read_only")
    assert_envelope(await api.get(path, token=approve), 403, "admin_token_approve_only")
    zone_read = (await api.mint("read", zone=zone["id"]))["token"]
    assert_envelope(await api.get(path, token=zone_read), 403, "admin_token_read_only")
    response = await api.get(path, token=write)
    ok(response)
    assert response.json() == {"client_secret": app["client_secret"]}


# foundation §18 item 28
async def test_approve_token_reads_but_cannot_write(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    approve = tokens["approve"]
    zid = zone["id"]
    for path in (
        "/v1/zones",
        f"/v1/zones/{zid}",
        f"/v1/zones/{zid}/dcr-status",
        "/v1/admin-tokens",
    ):
        ok(await api.get(path, token=approve))
    for method, path, body in (
        ("POST", "/v1/zones", {"name": "nope"}),
        ("PATCH", f"/v1/zones/{zid}", {"name": "nope"}),
        ("DELETE", f"/v1/zones/{zid}", None),
        ("POST", "/v1/admin-tokens", {"name": "t", "scope": "global"}),
    ):
        response = await api.request(method, path, token=approve, json=body)
        assert_envelope(response, 403, "admin_token_approve_only")
    if route_registered("POST", APPLICATIONS):
        response = await api.post(
            f"/v1/zones/{zid}/applications",
            token=approve,
            json={"name": "x", "registration_method": "managed"},
        )
        assert_envelope(response, 403, "admin_token_approve_only")


# foundation §18 items 28 and 29
@needs_route("POST", APPROVE)
@needs_route("POST", REJECT)
async def test_who_may_decide_challenges(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    base = f"/v1/zones/{zone['id']}/step-up-challenges/{hexname('missing')}"
    approve = tokens["approve"]
    zone_approve = (await api.mint("approve", zone=zone["id"]))["token"]
    write = tokens["write"]
    read = tokens["read"]
    for verb in ("approve", "reject"):
        path = f"{base}/{verb}"
        # item 28: an approve token reaches the route; the challenge does not exist.
        assert_envelope(await api.post(path, token=approve), 404, "challenge_not_found")
        assert_envelope(await api.post(path, token=zone_approve), 404, "challenge_not_found")
        # item 29: a minted global write token may not decide; the bootstrap token may.
        assert_envelope(await api.post(path, token=write), 403, "approve_capability_required")
        assert_envelope(await api.post(path, token=BOOTSTRAP_TOKEN), 404, "challenge_not_found")
        assert_envelope(await api.post(path, token=read), 403, "admin_token_read_only")


# foundation §18 item 30
async def test_zone_token_stays_in_its_zone(api: Api) -> None:
    own = await api.zone()
    other = await api.zone()
    write = (await api.mint("write", zone=own["id"]))["token"]
    read = (await api.mint("read", zone=own["id"]))["token"]
    ok(await api.get(f"/v1/zones/{own['id']}", token=write))
    ok(await api.get(f"/v1/zones/{own['id']}/dcr-status", token=read))
    ok(await api.get(f"/v1/zones/{own['id']}/overview", token=read))
    renamed = await api.patch(f"/v1/zones/{own['id']}", token=write, json={"name": hexname("own")})
    ok(renamed)
    for token in (write, read):
        for method, path, body in (
            ("GET", f"/v1/zones/{other['id']}", None),
            ("GET", f"/v1/zones/{other['id']}/overview", None),
            ("GET", "/v1/zones", None),
            ("GET", "/v1/admin-tokens", None),
            ("GET", "/v1/zones/unknown-zone-id", None),
        ):
            response = await api.request(method, path, token=token, json=body)
            assert_envelope(response, 403, "admin_token_zone_mismatch")
    for method, path, body in (
        ("PATCH", f"/v1/zones/{other['id']}", {"name": "x"}),
        ("DELETE", f"/v1/zones/{other['id']}", None),
        ("POST", "/v1/zones", {"name": "x"}),
        ("POST", "/v1/admin-tokens", {"name": "t", "scope": "zone", "zone_id": own["id"]}),
    ):
        response = await api.request(method, path, token=write, json=body)
        assert_envelope(response, 403, "admin_token_zone_mismatch")
    # A read zone token asking to write gets the capability code first (gate 1).
    response = await api.post("/v1/zones", token=read, json={"name": "x"})
    assert_envelope(response, 403, "admin_token_read_only")
    assert (await api.get(f"/v1/zones/{other['id']}")).json() == other
    if route_registered("GET", TEMPLATES):
        response = await api.get("/v1/policy-templates", token=read)
        ok(response)
        assert isinstance(response.json(), list)
    if route_registered("POST", APPLICATIONS):
        response = await api.post(
            f"/v1/zones/{own['id']}/applications",
            token=write,
            json={"name": hexname("zoned"), "registration_method": "managed"},
        )
        ok(response, 201)
        response = await api.post(
            f"/v1/zones/{other['id']}/applications",
            token=write,
            json={"name": "x", "registration_method": "managed"},
        )
        assert_envelope(response, 403, "admin_token_zone_mismatch")
        ok(await api.get(f"/v1/zones/{own['id']}/applications", token=read))


# foundation §18 item 30 (the global read path)
@needs_route("GET", TEMPLATES)
async def test_zone_token_reads_policy_templates(api: Api) -> None:
    zone = await api.zone()
    token = (await api.mint("read", zone=zone["id"]))["token"]
    response = await api.get("/v1/policy-templates", token=token)
    ok(response)
    assert isinstance(response.json(), list)


# foundation §18 item 31
@needs_route("POST", APPLICATIONS)
@needs_route("GET", APPLICATION)
async def test_zone_token_does_not_see_traits(api: Api) -> None:
    zone = await api.zone()
    app = await application(api, zone["id"])
    zoned = (await api.mint("read", zone=zone["id"]))["token"]
    path = f"/v1/zones/{zone['id']}/applications"
    as_global = (await api.get(f"{path}/{app['id']}")).json()
    assert "traits" in as_global
    as_zone = await api.get(f"{path}/{app['id']}", token=zoned)
    ok(as_zone)
    assert "traits" not in as_zone.json()
    assert {k: v for k, v in as_global.items() if k != "traits"} == as_zone.json()
    listed = await api.get(path, token=zoned)
    ok(listed)
    assert listed.json()["items"]
    assert all("traits" not in item for item in listed.json()["items"])
    assert all("traits" in item for item in (await api.get(path)).json()["items"])


# foundation §18 item 32
async def test_reserved_zones_are_read_only_except_to_bootstrap(
    api: Api, tokens: dict[str, str]
) -> None:
    by_name = await api.zone(f"caracal.sys/{hexname('ops')}")
    by_slug = await api.zone(hexname("ordinary name"), slug=hexname("caracal-sys-ops"))
    write = tokens["write"]
    approve = tokens["approve"]
    for zone in (by_name, by_slug):
        zid = zone["id"]
        zoned = (await api.mint("write", zone=zid))["token"]
        for token in (write, zoned):
            response = await api.patch(f"/v1/zones/{zid}", token=token, json={"name": "taken over"})
            assert_envelope(response, 403, "system_zone_read_only")
            response = await api.delete(f"/v1/zones/{zid}", token=token)
            assert_envelope(response, 403, "system_zone_read_only")
            ok(await api.get(f"/v1/zones/{zid}", token=token))
            ok(await api.get(f"/v1/zones/{zid}/dcr-status", token=token))
        ok(await api.get(f"/v1/zones/{zid}", token=approve))
        if route_registered("POST", APPLICATIONS):
            response = await api.post(
                f"/v1/zones/{zid}/applications",
                token=write,
                json={"name": "x", "registration_method": "managed"},
            )
            assert_envelope(response, 403, "system_zone_read_only")
            await application(api, zid)  # the bootstrap token may
        if route_registered("POST", APPROVE):
            response = await api.post(
                f"/v1/zones/{zid}/step-up-challenges/missing/approve", token=approve
            )
            assert_envelope(response, 403, "system_zone_read_only")
        # The bootstrap token may mutate.
        response = await api.patch(f"/v1/zones/{zid}", json={"dcr_enabled": True})
        ok(response)
        assert response.json()["dcr_enabled"] is True
    # Reserved zones are hidden from the list but readable by id.
    listed = (await api.get("/v1/zones", params={"limit": 500})).json()["items"]
    assert not {by_name["id"], by_slug["id"]} & {z["id"] for z in listed}
    ok(await api.delete(f"/v1/zones/{by_slug['id']}"), 204)


# foundation §18 item 33 (zones)
async def test_reserved_zone_values(api: Api, tokens: dict[str, str]) -> None:
    write = tokens["write"]
    suffix = secrets.token_hex(3)
    refused = [
        {"name": "caracal.sys/impostor"},
        {"name": "  CARACAL.SYS/Impostor  "},
        {"name": "Caracal.Sys/x"},
        {"name": "ordinary", "slug": "caracal-sys-impostor"},
        {"name": "ordinary", "slug": f"caracal-sys-{suffix}"},
        {"name": f"Caracal Sys Impostor {suffix}"},  # generated slug caracal-sys-impostor-…
        {"name": f"  CARACAL   sys {suffix}"},
        {"name": f"caracal_sys_{suffix}"},
    ]
    for body in refused:
        response = await api.post("/v1/zones", token=write, json=body)
        envelope = assert_envelope(response, 409, "reserved_namespace")
        assert isinstance(envelope["error_description"], str)
    # Renames are checked too.
    zone = await api.zone()
    for body in (
        {"name": "caracal.sys/rename"},
        {"slug": "caracal-sys-rename"},
        {"name": " Caracal.sys/x "},
    ):
        response = await api.patch(f"/v1/zones/{zone['id']}", token=write, json=body)
        assert_envelope(response, 409, "reserved_namespace")
    assert (await api.get(f"/v1/zones/{zone['id']}")).json() == zone
    # Lookalikes are allowed.
    for body in (
        {"name": f"my-caracal-sys-zone {suffix}"},
        {"name": "lookalike", "slug": f"my-caracal-sys-zone-x{suffix}"},
        {"name": f"caracal-operator {suffix}"},
        {"name": f"caracal.system {suffix}"},
    ):
        ok(await api.post("/v1/zones", token=write, json=body), 201)
    # The bootstrap token may use reserved values.
    created = await api.post("/v1/zones", json={"name": "caracal.sys/impostor"})
    ok(created, 201)
    assert created.json()["slug"].startswith("caracal-sys-impostor")
    ok(
        await api.post("/v1/zones", json={"name": "x", "slug": f"caracal-sys-impostor-{suffix}"}),
        201,
    )
    ok(await api.post("/v1/zones", json={"name": f"Caracal Sys Boot {suffix}"}), 201)


# foundation §18 item 33 (applications)
@needs_route("POST", APPLICATIONS)
async def test_reserved_application_names(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    write = tokens["write"]
    path = f"/v1/zones/{zone['id']}/applications"
    for name in ("caracal.sys/agent", "  CARACAL.SYS/Agent  "):
        response = await api.post(
            path, token=write, json={"name": name, "registration_method": "managed"}
        )
        assert_envelope(response, 409, "reserved_namespace")
    app = await application(api, zone["id"])
    response = await api.patch(
        f"{path}/{app['id']}", token=write, json={"name": "caracal.sys/agent"}
    )
    assert_envelope(response, 409, "reserved_namespace")
    if route_registered("POST", APPLICATIONS + "/dcr"):
        response = await api.post(f"{path}/dcr", token=write, json={"name": "caracal.sys/agent"})
        assert_envelope(response, 409, "reserved_namespace")
    ok(
        await api.post(
            path,
            token=write,
            json={"name": "my-caracal.sys/agent", "registration_method": "managed"},
        ),
        201,
    )
    ok(
        await api.post(path, json={"name": "caracal.sys/agent", "registration_method": "managed"}),
        201,
    )


# foundation §18 item 33 (providers)
@needs_route("POST", PROVIDERS)
async def test_reserved_provider_identifiers(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    write = tokens["write"]
    path = f"/v1/zones/{zone['id']}/providers"
    for body in (
        {"name": "llm", "identifier": "provider://caracal-sys-llm", "kind": "none"},
        {"name": "llm", "identifier": "  provider://caracal-sys-llm  ", "kind": "none"},
        {"name": "caracal sys llm", "kind": "none"},  # generated provider://caracal-sys-llm
    ):
        response = await api.post(path, token=write, json=body)
        assert_envelope(response, 409, "reserved_namespace")
    ok(
        await api.post(
            path,
            token=write,
            json={
                "name": "lookalike",
                "identifier": "provider://my-caracal-sys-llm",
                "kind": "none",
            },
        ),
        201,
    )
    ok(
        await api.post(
            path, json={"name": "llm", "identifier": "provider://caracal-sys-llm", "kind": "none"}
        ),
        201,
    )


# foundation §18 item 33 (resources)
@needs_route("POST", RESOURCES)
@needs_route("POST", PROVIDERS)
async def test_reserved_resource_identifiers(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    write = tokens["write"]
    provider = await api.post(
        f"/v1/zones/{zone['id']}/providers", json={"name": hexname("none"), "kind": "none"}
    )
    ok(provider, 201)
    path = f"/v1/zones/{zone['id']}/resources"
    body = {
        "scopes": ["llm:use"],
        "credential_provider_id": provider.json()["id"],
        "upstream_url": "https://llm.example.test",
    }
    for identifier in ("caracal-sys://llm", "CARACAL-SYS://llm", "Caracal-Sys://other"):
        response = await api.post(path, token=write, json={**body, "identifier": identifier})
        assert_envelope(response, 409, "reserved_namespace")
    ok(await api.post(path, token=write, json={**body, "identifier": "my-caracal-sys://llm"}), 201)
    ok(await api.post(path, json={**body, "identifier": "caracal-sys://llm"}), 201)


# foundation §18 item 33 (policies)
@needs_route("POST", POLICIES)
async def test_reserved_policy_names(api: Api, tokens: dict[str, str]) -> None:
    zone = await api.zone()
    write = tokens["write"]
    path = f"/v1/zones/{zone['id']}/policies"
    for name in ("caracal.sys/policy", " Caracal.SYS/policy "):
        response = await api.post(path, token=write, json={"name": name, "content": VALID_POLICY})
        assert_envelope(response, 409, "reserved_namespace")
    ok(
        await api.post(
            path, token=write, json={"name": "my caracal.sys/policy", "content": VALID_POLICY}
        ),
        201,
    )
    ok(await api.post(path, json={"name": "caracal.sys/policy", "content": VALID_POLICY}), 201)
