"""PATCH semantics and attribution of writes (foundation §10, §11)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import Api, assert_envelope
from tests.integration.foundation.support import bootstrap_id, fetch_one, open_api, unique


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the whole module (these tests change no process state)."""
    async with open_api(database_dsn, redis_url) as app:
        yield app


async def _create(api: Api, headers: dict[str, str | bytes] | None = None, **kw: object) -> dict:
    response = await api.post(
        "/v1/zones", json={"name": unique("attributed")}, headers=headers, **kw
    )
    assert response.status_code == 201, response.text
    return response.json()


# foundation §18 item 42
@pytest.mark.parametrize(
    "label",
    [
        "someone@example.test",
        "Zoë Müller",
        "O'Brien+ops:1_a.b-c",
        "運用者 42",
        "x" * 256,
    ],
)
async def test_authorized_by_header_is_stored(api: Api, label: str) -> None:
    zone = await _create(api, headers={"x-caracal-authorized-by": label.encode()})
    assert zone["created_by"] == label
    assert zone["updated_by"] == label
    stored = await fetch_one(api, "SELECT created_by FROM zones WHERE id = :id", id=zone["id"])
    assert stored is not None
    assert stored.created_by == label
    response = await api.patch(
        f"/v1/zones/{zone['id']}",
        json={"operator_governed": True},
        headers={"x-caracal-authorized-by": "patcher@example.test"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["updated_by"] == "patcher@example.test"
    assert response.json()["created_by"] == label


# foundation §18 item 42
@pytest.mark.parametrize(
    "value",
    [
        b"bad<value>",
        b"semi;colon",
        b'quote"d',
        b"x" * 257,
        b"\xff\xfe",  # not UTF-8
        b"tab\there",
        b"",
    ],
)
async def test_invalid_authorized_by_falls_back_to_token(api: Api, value: bytes) -> None:
    fallback = f"admin:{await bootstrap_id(api)}"
    zone = await _create(api, headers={"x-caracal-authorized-by": value})
    assert zone["created_by"] == fallback
    assert zone["updated_by"] == fallback


# foundation §18 item 42
async def test_minted_token_attribution(api: Api) -> None:
    minted = await api.mint("write", name="attribution")
    assert minted["created_by"] == f"admin:{await bootstrap_id(api)}"
    zone = await _create(api, token=minted["token"])
    assert zone["created_by"] == f"admin:{minted['id']}"
    response = await api.patch(
        f"/v1/zones/{zone['id']}", json={"name": "renamed by minted"}, token=minted["token"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["updated_by"] == f"admin:{minted['id']}"
    # A header still wins for a minted token; it is a label, not a privilege.
    zone = await _create(
        api, token=minted["token"], headers={"x-caracal-authorized-by": "robot@example.test"}
    )
    assert zone["created_by"] == "robot@example.test"


# foundation §18 item 42 (the *_via_operator flags, §11)
async def test_via_operator_flags(api: Api) -> None:
    operator = {"x-caracal-created-via": "operator"}
    zone = await _create(api, headers=operator)
    assert zone["created_via_operator"] is True
    plain = await _create(api, headers={"x-caracal-created-via": "Operator"})
    assert plain["created_via_operator"] is False
    # The zone's coauthor badge (default true) gates the flag on later writes.
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "x"}, headers=operator)
    assert response.json()["updated_via_operator"] is True
    response = await api.patch(
        f"/v1/zones/{zone['id']}", json={"operator_coauthor_badge": False}, headers=operator
    )
    assert response.json()["operator_coauthor_badge"] is False
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "y"}, headers=operator)
    assert response.json()["updated_via_operator"] is False
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "z"})
    assert response.json()["updated_via_operator"] is False


# foundation §10: sending the current value still counts as a change
async def test_patch_with_current_value_bumps_updated_at(api: Api) -> None:
    zone = await _create(api)
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": zone["name"]})
    assert response.status_code == 200, response.text
    assert response.json()["updated_at"] > zone["updated_at"]
    assert response.json()["created_at"] == zone["created_at"]


# foundation §10: null for a non-nullable field is a body error, absent keys are unchanged
async def test_patch_null_and_absent_fields(api: Api) -> None:
    zone = await _create(api)
    for body in ({"name": None}, {"slug": None}, {"dcr_enabled": None}):
        assert_envelope(await api.patch(f"/v1/zones/{zone['id']}", json=body), 400, "invalid_zone")
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"dcr_enabled": True})
    after = response.json()
    assert after["dcr_enabled"] is True
    for key in ("name", "slug", "operator_governed", "operator_coauthor_badge", "created_by"):
        assert after[key] == zone[key]
