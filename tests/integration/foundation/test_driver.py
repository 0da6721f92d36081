"""kit.driver: driver statements join the unit of work's transaction, or refuse to run;
units of work on the driver connection alone (DriverTx)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from caracal_api.kit import driver, rawread
from caracal_api.kit.ids import uuid7
from caracal_api.resources import service as resource_service
from caracal_api.zones.errors import ZoneNotFound
from tests.conftest import Api, assert_envelope
from tests.integration.foundation.support import fetch, records_of, unique, wait_records


async def test_a_driver_statement_first_still_runs_inside_the_transaction(api: Api) -> None:
    marker = f"driver-{uuid7()}"
    async with api.runtime.sessionmaker() as session, session.begin():
        db = await driver.raw(session)  # no SQLAlchemy statement yet: of() begins
        await db.execute("SELECT set_config('application_name', $1, true)", marker)
        inside = await session.execute(text("SELECT current_setting('application_name')"))
        assert inside.scalar_one() == marker
        await session.rollback()
    async with api.runtime.engine.connect() as conn:
        after = await conn.execute(text("SELECT current_setting('application_name')"))
        assert after.scalar_one() != marker


async def test_an_autocommit_connection_is_refused(api: Api) -> None:
    async with api.runtime.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(driver.NotInTransaction):
            await driver.of(autocommit)


# --- units of work on the driver connection (Call.run(on_driver=True)) ---------------------


async def _zone_with_provider(api: Api) -> tuple[str, str]:
    zone = await api.zone(unique("driver uow"))
    response = await api.post(
        f"/v1/zones/{zone['id']}/providers", json={"name": "none", "kind": "none"}
    )
    assert response.status_code == 201, response.text
    return zone["id"], response.json()["id"]


def _resource(provider_id: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "scopes": ["read"],
        "credential_provider_id": provider_id,
        "upstream_url": "https://api.example.test/",
    }


@pytest.mark.parametrize("failures", [2, 5])
async def test_a_driver_unit_of_work_retries_serialization_failures(
    api: Api, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    zone_id, provider_id = await _zone_with_provider(api)
    real_create = resource_service.create_resource
    attempts = 0

    async def flaky(session: Any, ctx: Any, *args: Any) -> Any:
        nonlocal attempts
        attempts += 1
        assert isinstance(session, driver.DriverTx)  # no ORM session on this route
        result = await real_create(session, ctx, *args)
        if attempts <= failures:
            code = "40001" if attempts % 2 else "40P01"
            await (await driver.raw(session)).execute(
                f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{code}'; END $$"
            )
        return result

    monkeypatch.setattr(resource_service, "create_resource", flaky)
    response = await api.post(
        f"/v1/zones/{zone_id}/resources", json=_resource(provider_id, "retried")
    )
    monkeypatch.undo()
    assert attempts == 3
    names = await fetch(api, "SELECT name FROM resources WHERE zone_id = :z", z=zone_id)
    request_id = response.headers["x-request-id"]
    if failures < 3:
        assert response.status_code == 201, response.text
        assert [row.name for row in names] == ["retried"]  # failed attempts left nothing
        assert [r.status_code for r in await records_of(api, request_id)] == [201]
    else:
        assert_envelope(response, response.status_code, response.json()["error"])
        assert response.status_code >= 500
        assert names == []
        rows = await wait_records(api, request_id)
        assert [r.status_code for r in rows] == [response.status_code]


async def test_a_failed_driver_unit_of_work_leaves_nothing_and_a_clean_connection(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone_id, provider_id = await _zone_with_provider(api)
    real_create = resource_service.create_resource

    async def fails_after_writing(session: Any, ctx: Any, *args: Any) -> Any:
        await real_create(session, ctx, *args)
        raise ZoneNotFound()  # a 4xx after the insert: the insert must not survive

    monkeypatch.setattr(resource_service, "create_resource", fails_after_writing)
    response = await api.post(f"/v1/zones/{zone_id}/resources", json=_resource(provider_id, "x"))
    monkeypatch.undo()
    assert_envelope(response, 404, "zone_not_found")
    assert await fetch(api, "SELECT id FROM resources WHERE zone_id = :z", z=zone_id) == []
    # Every pooled connection went back idle: the next creates on them all succeed.
    created = await asyncio.gather(
        *(
            api.post(f"/v1/zones/{zone_id}/resources", json=_resource(provider_id, f"after {i}"))
            for i in range(api.runtime.settings.db_pool_max)
        )
    )
    assert [r.status_code for r in created] == [201] * api.runtime.settings.db_pool_max


# --- kit.rawread.driver_transaction (the dispatcher's statements) --------------------------


async def test_an_async_commit_transaction_commits_and_scopes_its_setting(api: Api) -> None:
    engine = api.runtime.engine
    zone = await api.zone(unique("async commit"))
    async with rawread.driver_transaction(engine, async_commit=True) as conn:
        assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "off"
        await conn.execute("UPDATE zones SET name = $1 WHERE id = $2", "renamed", zone["id"])
    async with rawread.raw_reader(engine) as db:
        assert await db.fetchval("SELECT name FROM zones WHERE id = $1", zone["id"]) == "renamed"
        # SET LOCAL ended with the transaction on whichever pooled connection ran it.
        assert await db.fetchval("SELECT current_setting('synchronous_commit')") == "on"


async def test_a_failed_async_commit_transaction_rolls_back_and_keeps_the_connection(
    api: Api,
) -> None:
    engine = api.runtime.engine
    zone = await api.zone(unique("async rollback"))
    pids: list[int] = []

    async def rename_then(fail: str) -> None:
        async with rawread.driver_transaction(engine, async_commit=True) as conn:
            pids.append(conn.get_server_pid())
            await conn.execute("UPDATE zones SET name = 'lost' WHERE id = $1", zone["id"])
            if fail == "sql":
                await conn.execute("SELECT * FROM no_such_table")
            raise RuntimeError("caller gave up")

    with pytest.raises(asyncpg.UndefinedTableError):
        await rename_then("sql")
    with pytest.raises(RuntimeError):
        await rename_then("caller")
    async with rawread.raw_reader(engine) as db:
        assert await db.fetchval("SELECT name FROM zones WHERE id = $1", zone["id"]) == zone["name"]
        # Rolled back, not invalidated: the server session lives on in the pool.
        alive = await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pids[0])
    assert alive == 1
