"""TP1 the template catalog (checklist 30)."""

from __future__ import annotations

from tests.conftest import Api, assert_envelope
from tests.integration.policies.support import activate, create_policy, create_set, set_version


async def test_catalog(api: Api) -> None:
    response = await api.get("/v1/policy-templates")
    assert response.status_code == 200, response.text
    catalog = response.json()
    assert isinstance(catalog, list)
    assert catalog
    ids = [t["id"] for t in catalog]
    assert len(ids) == len(set(ids))
    assert {"application-bindings", "resource-grants", "label-confinement", "zone-restriction"} <= (
        set(ids)
    )
    for template in catalog:
        assert list(template) == ["id", "name", "description", "content"]
        assert all(isinstance(value, str) and value for value in template.values())
        assert template["content"].startswith("# caracal:data-document\npackage caracal.authz\n")
    assert (await api.get("/v1/policy-templates")).content == response.content


async def test_catalog_access(api: Api) -> None:
    assert_envelope(await api.get("/v1/policy-templates", token=""), 401, "invalid_admin_token")
    assert_envelope(await api.get("/v1/policy-templates/x"), 404, "not_found")
    zone = (await api.zone())["id"]
    for token in (await api.mint("read"), await api.mint("approve"), await api.mint("read", zone)):
        response = await api.get("/v1/policy-templates", token=token["token"])
        assert response.status_code == 200, response.text


async def test_templates_create_and_activate(api: Api) -> None:
    zone = (await api.zone())["id"]
    catalog = (await api.get("/v1/policy-templates")).json()
    ids = [
        (await create_policy(api, zone, template["content"], name=template["id"]))["version_id"]
        for template in catalog
    ]
    policy_set = await create_set(api, zone)
    version = await set_version(api, zone, policy_set["id"], *ids)
    await activate(api, zone, policy_set["id"], version["id"])
    current = (await api.get(f"/v1/zones/{zone}/policy-sets/{policy_set['id']}")).json()
    assert current["active_version_id"] == version["id"]
