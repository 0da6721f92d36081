"""Optional STS coordination (policies.md §6; checklist 23, 27) against a local HTTP STS."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tests.conftest import Api, AppFactory, assert_envelope
from tests.fixtures.http_servers import LocalServer, Recorded, Reply
from tests.integration.policies.support import (
    activate,
    create_policy,
    create_set,
    doc,
    set_version,
    sql,
)
from tests.integration.policy_sets.sts_support import free_port
from tests.integration.policy_sets.test_simulate_api import GRANTS, well_formed

KEY = bytes(range(200, 232))
SIMULATE = "/internal/policy/simulate"


async def sts_api(make_api: AppFactory, server: LocalServer) -> Api:
    return await make_api(sts_url=server.base_url, gateway_sts_hmac_key=KEY)


def sts_result(decision: str = "allow") -> Reply:
    return Reply(
        200,
        {
            "policy_set_id": "ps",
            "version_id": "v",
            "manifest_sha256": "m",
            "result": {
                "decision": decision,
                "evaluation_status": "complete",
                "determining_policies": [],
                "diagnostics": [],
            },
        },
    )


def assert_signed(request: Recorded, method: str, path: str) -> None:
    headers = request.headers
    timestamp = headers["x-caracal-gateway-timestamp"]
    request_id = headers["x-caracal-gateway-request"]
    assert timestamp.isdigit()
    digest = hashlib.sha256(request.body).hexdigest()
    message = f"{timestamp}\n{request_id}\n{method}\n{path}\n{digest}".encode()
    expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert headers["x-caracal-gateway-signature"] == expected


async def prepared(api: Api) -> tuple[str, str, dict[str, Any], str]:
    zone = (await api.zone())["id"]
    policy = await create_policy(api, zone, doc(**GRANTS))
    policy_set = await create_set(api, zone)
    return zone, policy_set["id"], policy, policy["version_id"]


async def test_bundle_verification_is_signed(make_api: AppFactory, local_http: LocalServer) -> None:
    api = await sts_api(make_api, local_http)
    local_http.route("POST", SIMULATE, sts_result())
    zone, set_id, _, pv = await prepared(api)
    await set_version(api, zone, set_id, pv)
    (request,) = local_http.requests_to(SIMULATE)
    assert_signed(request, "POST", SIMULATE)
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "policy_set_id": set_id,
        "version_id": "bundle-verify",
        "manifest_sha256": "",
        "policies": [{"id": pv, "content": doc(**GRANTS)}],
        "input": {},
    }
    assert len(request.headers["x-caracal-gateway-request"]) == 36


async def test_simulate_with_the_sts(make_api: AppFactory, local_http: LocalServer) -> None:
    api = await sts_api(make_api, local_http)
    local_http.route("POST", SIMULATE, sts_result("allow"))
    zone, set_id, _, pv = await prepared(api)
    version = await set_version(api, zone, set_id, pv)
    path = f"/v1/zones/{zone}/policy-sets/{set_id}/simulate"
    body = {"version_id": version["id"], "input": well_formed(zone)}
    agreed = (await api.post(path, json=body)).json()
    assert agreed["explanation"]["sts"] == {"evaluation": "executed", "decision": "allow"}
    assert agreed["warnings"] == []
    sent = json.loads(local_http.requests_to(SIMULATE)[-1].body)
    assert sent["version_id"] == version["id"]
    assert sent["manifest_sha256"] == version["manifest_sha256"]
    assert sent["input"]["schema_version"] == "2026-05-20"

    local_http.route("POST", SIMULATE, sts_result("deny"))
    assert (await api.post(path, json=body)).json()["warnings"] == ["sts_decision_mismatch"]

    local_http.route("POST", SIMULATE, Reply(503, {"error": "sts_overloaded"}))
    failed = (await api.post(path, json=body)).json()
    assert failed["warnings"] == ["sts_simulation_failed:sts_overloaded"]
    assert failed["explanation"]["sts"]["evaluation"] == "failed"
    assert failed["explanation"]["evaluation"] == "executed"

    local_http.route("POST", SIMULATE, Reply(200, "<html>nope</html>"))
    invalid = (await api.post(path, json=body)).json()
    assert len(invalid["warnings"]) == 1
    assert invalid["warnings"][0].startswith("sts_simulation_invalid_response:")

    # no input: the STS is not asked
    count = len(local_http.requests_to(SIMULATE))
    no_input = (await api.post(path, json={"version_id": version["id"]})).json()
    assert "sts" not in no_input["explanation"]
    assert len(local_http.requests_to(SIMULATE)) == count


async def test_unreachable_sts(make_api: AppFactory, local_http: LocalServer) -> None:
    reachable = await sts_api(make_api, local_http)
    local_http.route("POST", SIMULATE, sts_result())
    zone, set_id, _, pv = await prepared(reachable)
    version = await set_version(reachable, zone, set_id, pv)
    down = await make_api(sts_url=f"http://127.0.0.1:{free_port()}", gateway_sts_hmac_key=KEY)
    refused = await down.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/versions",
        json={"manifest": [{"policy_version_id": pv}]},
    )
    assert_envelope(refused, 503, "policy_verification_unavailable")
    activated = await down.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/activate", json={"version_id": version["id"]}
    )
    assert activated.status_code == 202, activated.text
    simulated = await down.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/simulate",
        json={"version_id": version["id"], "input": well_formed(zone)},
    )
    warnings = simulated.json()["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("sts_simulation_unreachable:")
    status = await down.get(f"/v1/zones/{zone}/policy-sets/{set_id}/activation-status")
    assert status.json()["sts"]["state"] == "unreachable"


async def test_sts_rejection_blocks_versions_and_activation(
    make_api: AppFactory, local_http: LocalServer
) -> None:
    api = await sts_api(make_api, local_http)
    local_http.route("POST", SIMULATE, sts_result())
    zone, set_id, _, pv = await prepared(api)
    version = await set_version(api, zone, set_id, pv)
    rejection = {"error": "invalid_bundle", "error_description": "module pv fails to load"}
    local_http.route("POST", SIMULATE, Reply(422, rejection))
    refused = await api.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/versions",
        json={"manifest": [{"policy_version_id": pv}]},
    )
    body = assert_envelope(refused, 422, "invalid_policy_bundle")
    assert body["error_description"] == "module pv fails to load"
    blocked = await api.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/activate", json={"version_id": version["id"]}
    )
    assert_envelope(blocked, 422, "invalid_policy_bundle")
    current = (await api.get(f"/v1/zones/{zone}/policy-sets/{set_id}")).json()
    assert current["active_version_id"] is None
    local_http.route("POST", SIMULATE, Reply(500, "plain failure"))
    plain = await api.post(
        f"/v1/zones/{zone}/policy-sets/{set_id}/activate", json={"version_id": version["id"]}
    )
    assert assert_envelope(plain, 422, "invalid_policy_bundle")["error_description"] == "500"


async def test_activation_status_with_the_sts(
    make_api: AppFactory, local_http: LocalServer
) -> None:
    api = await sts_api(make_api, local_http)
    local_http.route("POST", SIMULATE, sts_result())
    zone, set_id, _, pv = await prepared(api)
    version = await set_version(api, zone, set_id, pv)
    activated = await activate(api, zone, set_id, version["id"])
    await sql(
        api,
        "UPDATE event_outbox SET dispatched_at = now() WHERE id = :id",
        id=activated["outbox_id"],
    )
    status_path = f"/internal/policy/status/{zone}"
    url = f"/v1/zones/{zone}/policy-sets/{set_id}/activation-status"
    loaded = {
        "zone_id": zone,
        "loaded": True,
        "policy_set_version_id": version["id"],
        "manifest_sha256": version["manifest_sha256"],
        "loaded_at": "2026-01-01T00:00:00.000000Z",
        "age_seconds": 1.5,
        "unexpected": "dropped",
    }
    local_http.route("GET", status_path, Reply(200, loaded))
    body = (await api.get(url)).json()
    assert body["sts"] == {
        "state": "loaded",
        "loaded": True,
        "zone_id": zone,
        "policy_set_version_id": version["id"],
        "manifest_sha256": version["manifest_sha256"],
        "loaded_at": "2026-01-01T00:00:00.000000Z",
        "age_seconds": 1.5,
    }
    assert body["propagation_status"] == "loaded"
    (request,) = local_http.requests_to(status_path)
    assert_signed(request, "GET", status_path)
    assert request.body == b""

    local_http.route("GET", status_path, Reply(200, {**loaded, "policy_set_version_id": "older"}))
    assert (await api.get(url)).json()["propagation_status"] == "waiting_for_sts"
    fallback = {"zone_id": zone, "loaded": True, "manifest_sha256": "no_active_policy_set"}
    local_http.route("GET", status_path, Reply(200, fallback))
    assert (await api.get(url)).json()["propagation_status"] == "waiting_for_sts"
    local_http.route("GET", status_path, Reply(200, {"loaded": "yes", "age_seconds": "1"}))
    odd = (await api.get(url)).json()
    assert odd["sts"] == {"state": "not_loaded", "loaded": False}

    local_http.route("GET", status_path, Reply(200, "not json"))
    body = (await api.get(url)).json()
    assert body["sts"]["state"] == "failed"
    assert body["sts"]["detail"].startswith("invalid STS response:")
    assert body["propagation_status"] == "failed"

    local_http.route("GET", status_path, Reply(503, {"error": "e", "error_description": "warming"}))
    body = (await api.get(url)).json()
    assert body["sts"] == {"state": "failed", "detail": "warming"}
    assert body["propagation_status"] == "failed"
