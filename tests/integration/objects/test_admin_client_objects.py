"""The published `caracalai-admin` client and its reconcilers against the real server process
(objects.md §7 items 6, 25, 39, 48, 54)."""

from __future__ import annotations

import pytest
from caracalai_admin import AdminClient
from caracalai_admin.ensure import (
    ensure_api_key_provider,
    ensure_application,
    ensure_client_credentials_provider,
    ensure_resource,
)
from caracalai_admin.errors import AdminApiError

from tests.e2e.conftest import E2E_TOKEN, external_dsn, external_server
from tests.e2e.harness import ServerProcess

pytestmark = pytest.mark.e2e

__all__ = ["external_dsn", "external_server"]


@pytest.fixture
def client(external_server: ServerProcess) -> AdminClient:
    return AdminClient(api_url=external_server.url, admin_token=E2E_TOKEN)


def test_applications_with_the_admin_client(client: AdminClient) -> None:
    zone = client.zones.create({"name": "objects client apps"})
    app = client.applications.create(zone["id"], {"name": "svc", "registration_method": "managed"})
    assert app["registration_method"] == "managed"
    assert app["expires_at"] is None
    assert len(app["client_secret"]) >= 32
    assert "client_secret_hash" not in app
    got = client.applications.get(zone["id"], app["id"])
    assert "client_secret" not in got
    assert got["traits"] == []
    revealed = client.applications.get_client_secret(zone["id"], app["id"])
    assert revealed["client_secret"] == app["client_secret"]
    rotated = client.applications.rotate_secret(zone["id"], app["id"])
    assert rotated["client_secret"] != app["client_secret"]
    first = ensure_application(
        client, zone["id"], name="reconciled", traits=["team:a"], client_secret="s" * 40
    )
    again = ensure_application(
        client, zone["id"], name="reconciled", traits=["team:b"], client_secret="t" * 40
    )
    assert first == again
    assert client.applications.get(zone["id"], first)["traits"] == ["team:b"]
    assert client.applications.get_client_secret(zone["id"], first)["client_secret"] == "t" * 40
    with pytest.raises(AdminApiError) as taken:
        client.applications.create(zone["id"], {"name": "SVC", "registration_method": "managed"})
    assert taken.value.code == "application_name_taken"


def test_providers_resources_grants_connections(client: AdminClient) -> None:
    zone = client.zones.create({"name": "objects client world"})
    zid = zone["id"]
    key_provider = ensure_api_key_provider(
        client, zid, name="Weather", identifier="provider://weather",
        public_config={"header_name": "X-Api-Key"}, api_key="k-1",
    )  # fmt: skip
    assert key_provider is not None
    same = ensure_api_key_provider(
        client, zid, name="Weather", identifier="provider://weather",
        public_config={"header_name": "X-Api-Key"},
    )  # fmt: skip
    assert same == key_provider
    assert client.providers.get(zid, key_provider)["secret_config_keys"] == ["api_key"]
    cc = ensure_client_credentials_provider(
        client, zid, name="IdP", identifier="provider://idp",
        public_config={"token_endpoint": "https://idp.example.com/token", "client_id": "cid"},
        client_secret="cs",
    )  # fmt: skip
    assert cc is not None
    resource = ensure_resource(
        client, zid, name="Weather API", identifier="https://weather.example.com/v1",
        scopes=["weather:read"], upstream_url="https://Weather.example.com/v1/",
        credential_provider_id=key_provider,
    )  # fmt: skip
    assert resource["operations"] == []
    assert resource["operation_enforcement"] == "enforced"
    assert resource["upstream_url"] == "https://Weather.example.com/v1/"
    unchanged = ensure_resource(
        client, zid, name="Weather API", identifier="https://weather.example.com/v1",
        scopes=["weather:read"], upstream_url="https://Weather.example.com/v1/",
        credential_provider_id=key_provider,
    )  # fmt: skip
    assert unchanged["updated_at"] == resource["updated_at"]
    app = client.applications.create(zid, {"name": "agent", "registration_method": "managed"})
    grant = client.grants.create(
        zid,
        {"application_id": app["id"], "user_id": "u1", "resource_id": resource["id"],
         "scopes": ["weather:read"]},
    )  # fmt: skip
    assert grant["status"] == "active"
    listed = client.grants.list(zid)
    items = listed["items"] if isinstance(listed, dict) else listed
    assert items[0]["provider_kind"] == "api_key"
    client.grants.revoke(zid, grant["id"])
    assert client.grants.get(zid, grant["id"])["status"] == "revoked"
    ac = client.providers.create(
        zid,
        {
            "name": "Calendar", "kind": "oauth2_authorization_code",
            "config_json": {
                "authorization_endpoint": "https://idp.example.com/authorize",
                "token_endpoint": "https://idp.example.com/token",
                "redirect_uri": "https://app.example.com/cb", "client_id": "cid",
                "client_secret": "cs",
            },
        },
    )  # fmt: skip
    connection = client.provider_connections.create(
        zid, {"provider_id": ac["id"], "access_token": "at", "refresh_token": "rt"}
    )
    assert "access_token" not in connection
    replaced = client.provider_connections.create(
        zid, {"provider_id": ac["id"], "access_token": "at2"}
    )
    assert replaced["id"] == connection["id"]
    started = client.provider_connections.authorize_oauth(zid, {"provider_id": ac["id"]})
    assert started["authorization_url"].startswith("https://idp.example.com/authorize?")
    revoked = client.provider_connections.revoke(zid, {"provider_id": ac["id"]})
    assert revoked["status"] == "revoked"
    assert revoked["upstream_revocation"] == "unsupported"
