"""The published `caracalai-admin` client against the real server on real services."""

from __future__ import annotations

import httpx
import pytest
from caracalai_admin import AdminClient
from caracalai_admin.errors import AdminApiError

from tests.e2e.conftest import E2E_TOKEN
from tests.e2e.harness import ServerProcess


@pytest.fixture
def client(external_server: ServerProcess) -> AdminClient:
    return AdminClient(api_url=external_server.url, admin_token=E2E_TOKEN)


def test_zone_lifecycle_with_the_admin_client(client: AdminClient) -> None:
    zone = client.zones.create({"name": "Client Zone", "dcr_enabled": True})
    assert zone["dcr_enabled"] is True
    assert zone["created_at"] <= zone["updated_at"]
    listed = {z["id"] for z in client.zones.list()}
    assert zone["id"] in listed
    patched = client.zones.patch(zone["id"], {"name": "Client Zone Renamed"})
    assert patched["name"] == "Client Zone Renamed"
    assert patched["slug"] == zone["slug"]
    status = client.zones.dcr_status(zone["id"])
    assert status == {"id": zone["id"], "dcr_enabled": True, "live_dcr_applications": 0}
    client.zones.delete(zone["id"])
    with pytest.raises(AdminApiError) as missing:
        client.zones.get(zone["id"])
    assert missing.value.status == 404
    assert missing.value.code == "zone_not_found"


def test_client_sees_conflicts_as_typed_errors(client: AdminClient) -> None:
    client.zones.create({"name": "Dup", "slug": "e2e-dup-slug"})
    with pytest.raises(AdminApiError) as conflict:
        client.zones.create({"name": "Dup", "slug": "e2e-dup-slug"})
    assert conflict.value.status == 409
    assert conflict.value.code == "zone_slug_conflict"


def test_list_pages_through_many_zones(client: AdminClient) -> None:
    created = {client.zones.create({"name": f"Page {i}"})["id"] for i in range(5)}
    listed = [z["id"] for z in client.zones.list()]
    assert created <= set(listed)
    assert len(listed) == len(set(listed))


def test_ready_reports_external_dependencies(external_server: ServerProcess) -> None:
    ready = httpx.get(f"{external_server.url}/ready", timeout=10).json()
    assert ready["postgres"] == "external"
    assert ready["redis"] == "external"
