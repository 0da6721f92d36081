from tests.conftest import Api, assert_envelope


async def test_zone_create_and_get(api: Api) -> None:
    created = await api.zone("Smoke Zone")
    assert created["slug"].startswith("smoke-zone")
    got = await api.get(f"/v1/zones/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created


async def test_unknown_route_needs_auth_first(api: Api) -> None:
    response = await api.get("/v1/definitely-not-a-route", token="")
    assert_envelope(response, 401, "invalid_admin_token")
    response = await api.get("/v1/definitely-not-a-route")
    assert_envelope(response, 404, "not_found")
