"""The published `caracalai-admin` client and its policy reconcilers against the real
server process (CONTRACT §1 acceptance; policies.md checklist 7, 19, 23, 30)."""

from __future__ import annotations

import time

import pytest
from caracalai_admin import AdminClient
from caracalai_admin.ensure import ResourceGrant, ensure_grants
from caracalai_admin.errors import AdminApiError

from tests.e2e.conftest import E2E_TOKEN, external_dsn, external_server
from tests.e2e.harness import ServerProcess
from tests.integration.policies.support import HEADER, doc

pytestmark = pytest.mark.e2e

__all__ = ["external_dsn", "external_server"]


@pytest.fixture
def client(external_server: ServerProcess) -> AdminClient:
    return AdminClient(api_url=external_server.url, admin_token=E2E_TOKEN)


def test_policy_lifecycle_with_the_admin_client(client: AdminClient) -> None:
    zone = client.zones.create({"name": "policies client"})["id"]
    assert client.policies.validate(doc(grants={}))["valid"] is True
    with pytest.raises(AdminApiError) as refused:
        client.policies.validate(HEADER + "allow := 1\n")
    assert refused.value.code == "invalid_rego"

    created = client.policies.create(zone, {"name": "grants", "content": doc(grants={})})
    added = client.policies.add_version(zone, created["id"], doc(grants={"r": 1}))
    assert added["version"] == 2
    assert [p["id"] for p in client.policies.list(zone)] == [created["id"]]
    assert [v["version"] for v in client.policies.get(zone, created["id"])["versions"]] == [2, 1]

    policy_set = client.policy_sets.create(zone, "main", "the zone's set")
    version = client.policy_sets.add_version(
        zone, policy_set["id"], [{"policy_version_id": added["version_id"]}]
    )
    assert [v["id"] for v in client.policy_sets.list_versions(zone, policy_set["id"])] == [
        version["id"]
    ]
    simulated = client.policy_sets.simulate(
        zone, policy_set["id"], version["version_id"], input={"principal": {"zone_id": zone}}
    )
    assert simulated["explanation"]["evaluation"] == "executed"
    activated = client.policy_sets.activate(zone, policy_set["id"], version["version_id"])
    assert activated["activated"] is True
    # the server's dispatcher publishes the invalidation
    deadline = time.monotonic() + 15
    status = client.policy_sets.activation_status(
        zone, policy_set["id"], outbox_id=activated["outbox_id"]
    )
    while status["outbox"]["state"] != "dispatched" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.policy_sets.activation_status(
            zone, policy_set["id"], outbox_id=activated["outbox_id"]
        )
    assert status["outbox"]["state"] == "dispatched"
    assert status["propagation_status"] == "waiting_for_sts"

    templates = client.policy_templates.list()
    assert client.policy_templates.get("zone-restriction")["id"] == "zone-restriction"
    assert len(templates) == 5
    client.policy_sets.delete(zone, policy_set["id"])
    client.policies.delete(zone, created["id"])
    assert client.policies.list(zone) == []


def test_ensure_grants_converges(client: AdminClient) -> None:
    zone = client.zones.create({"name": "policies client grants"})["id"]
    grants = [
        ResourceGrant("app-billing", "resource://ledger", ["ledger:read", "ledger:write"]),
        ResourceGrant("app-reports", "resource://charts", ["charts:read"]),
    ]
    ensure_grants(client, zone, grants=grants)
    sets = client.policy_sets.list(zone)
    assert len(sets) == 1
    first_active = sets[0]["active_version_id"]
    assert first_active
    # unchanged grants: no new policy version, no new activation
    ensure_grants(client, zone, grants=grants)
    assert client.policy_sets.list(zone)[0]["active_version_id"] == first_active
    # changed grants: a new version, activated
    ensure_grants(client, zone, grants=grants[:1])
    assert client.policy_sets.list(zone)[0]["active_version_id"] != first_active
    policy = client.policies.list(zone)[0]
    assert len(client.policies.get(zone, policy["id"])["versions"]) == 2
