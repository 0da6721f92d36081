"""The builtin secret store on a real database and `caracal-api secrets rekey` (objects.md §1.4)."""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import text

from caracal_api.errors import CaracalError
from caracal_api.kit.envelope import KeyRing, kek_id
from caracal_api.kit.ids import uuid7
from caracal_api.secret_store.refs import (
    ACCESS_TOKEN_AAD,
    REFRESH_TOKEN_AAD,
    application_secret_ref,
    zone_of_ref,
)
from caracal_api.secret_store.rekey import rekey
from caracal_api.secret_store.service import SecretStore
from tests.conftest import KEK, Api
from tests.integration.objects.conftest import sql

OLD = hashlib.sha256(b"old key").digest()
# The suite's app seals under KEK; rotating to it keeps every other test's rows "current".
NEW = KEK


async def test_put_get_delete_on_the_callers_transaction(api: Api) -> None:
    zone = await api.zone()
    store = SecretStore(KeyRing(KEK))
    ref = application_secret_ref(zone["id"], "app-1")
    async with api.runtime.sessionmaker() as session, session.begin():
        await store.put(session, ref, b"one")
        await store.put(session, ref, b"two")
        assert await store.get(session, ref) == b"two"
    rows = await sql(api, "SELECT version, zone_id FROM secret_store WHERE ref = :r", r=ref)
    assert rows == [(2, zone["id"])]
    # a rolled-back transaction leaves nothing behind
    other = application_secret_ref(zone["id"], "app-2")

    async def put_then_fail() -> None:
        async with api.runtime.sessionmaker() as session, session.begin():
            await store.put(session, other, b"x")
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        await put_then_fail()
    assert await sql(api, "SELECT ref FROM secret_store WHERE ref = :r", r=other) == []
    async with api.runtime.sessionmaker() as session, session.begin():
        await store.delete(session, ref)
        await store.delete(session, ref)
        assert await store.get(session, ref) is None


async def test_moved_envelope_does_not_open(api: Api) -> None:
    zone = await api.zone()
    store = SecretStore(KeyRing(KEK))
    a, b = application_secret_ref(zone["id"], "a"), application_secret_ref(zone["id"], "b")
    async with api.runtime.sessionmaker() as session, session.begin():
        await store.put(session, a, b"secret")
    await sql(
        api,
        "INSERT INTO secret_store (ref, zone_id, envelope) SELECT :b, zone_id, envelope"
        " FROM secret_store WHERE ref = :a",
        a=a,
        b=b,
    )
    async with api.runtime.sessionmaker() as session:
        with pytest.raises(CaracalError) as info:
            await store.get(session, b)
    assert info.value.status == 502
    assert info.value.code == "secret_backend_unavailable"


def test_ref_without_zone_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="zones/"):
        zone_of_ref("applications/x/clientSecret")


async def test_rekey(api: Api) -> None:
    zone = await api.zone()
    old_store = SecretStore(KeyRing(OLD))
    refs = [application_secret_ref(zone["id"], f"rk-{i}") for i in range(205)]
    async with api.runtime.sessionmaker() as session, session.begin():
        for ref in refs:
            await old_store.put(session, ref, ref.encode())
    provider_id = uuid7()
    await sql(
        api,
        "INSERT INTO providers (id, zone_id, name, identifier, provider_kind)"
        " VALUES (:id, :z, 'p', :ident, 'oauth2_authorization_code')",
        id=provider_id, z=zone["id"], ident=f"provider://rk-{provider_id}",
    )  # fmt: skip
    conn_id = uuid7()
    await sql(
        api,
        "INSERT INTO provider_connections (id, zone_id, subject_id, provider_id,"
        " access_token_ct, refresh_token_ct) VALUES (:id, :z, 's', :p, :a, :r)",
        id=conn_id, z=zone["id"], p=provider_id,
        a=old_store.keys.seal(b"access", ACCESS_TOKEN_AAD),
        r=old_store.keys.seal(b"refresh", REFRESH_TOKEN_AAD),
    )  # fmt: skip
    broken = application_secret_ref(zone["id"], "broken")
    await sql(
        api,
        "INSERT INTO secret_store (ref, zone_id, envelope) VALUES (:r, :z, :e)",
        r=broken, z=zone["id"], e=KeyRing(hashlib.sha256(b"lost").digest()).seal(b"x", broken),
    )  # fmt: skip
    ring = KeyRing(NEW, previous=OLD)
    out = io.StringIO()
    code = await rekey(api.runtime.engine, ring, out)
    lines = out.getvalue().splitlines()
    assert code == 1
    # rows of other tests may exist in this database (all under KEK, so already current)
    assert lines[-1].startswith("rekeyed ")
    assert lines[-1].endswith(", failed 1")
    assert int(lines[-1].split()[1].rstrip(",")) >= 206
    assert any("/" in line and "rows" in line for line in lines)
    assert any("broken" in line for line in lines)
    rows = await sql(
        api, "SELECT ref, envelope, version FROM secret_store WHERE zone_id = :z", z=zone["id"]
    )
    for ref, envelope, version in rows:
        if ref == broken:
            continue
        assert bytes(envelope)[4:12] == kek_id(NEW)
        assert version == 2
        assert KeyRing(NEW).open(bytes(envelope), ref) == ref.encode()
    conn = await sql(
        api,
        "SELECT access_token_ct, refresh_token_ct FROM provider_connections WHERE id = :id",
        id=conn_id,
    )
    assert KeyRing(NEW).open(bytes(conn[0][0]), ACCESS_TOKEN_AAD) == b"access"
    assert KeyRing(NEW).open(bytes(conn[0][1]), REFRESH_TOKEN_AAD) == b"refresh"
    # idempotent: a second run re-seals nothing of ours
    await sql(api, "DELETE FROM secret_store WHERE ref = :r", r=broken)
    out = io.StringIO()
    sessionmaker = api.runtime.sessionmaker
    before = await sql(
        api, "SELECT ref, version FROM secret_store WHERE zone_id = :z", z=zone["id"]
    )
    code = await rekey(sessionmaker, ring, out)
    after = await sql(api, "SELECT ref, version FROM secret_store WHERE zone_id = :z", z=zone["id"])
    assert sorted(before) == sorted(after)
    summary = out.getvalue().splitlines()[-1]
    assert summary.startswith("rekeyed 0, already current ")
    assert summary.endswith(", failed 0")
    assert code == 0


async def test_rekey_waits_for_row_locks(api: Api) -> None:
    import asyncio

    zone = await api.zone()
    old_store = SecretStore(KeyRing(OLD))
    ref = application_secret_ref(zone["id"], "locked")
    async with api.runtime.sessionmaker() as session, session.begin():
        await old_store.put(session, ref, b"v")
    ring = KeyRing(NEW, previous=OLD)
    async with api.runtime.engine.connect() as holder:
        await holder.execute(
            text("SELECT 1 FROM secret_store WHERE ref = :r FOR UPDATE"), {"r": ref}
        )
        task = asyncio.create_task(rekey(api.runtime.engine, ring, io.StringIO()))
        await asyncio.sleep(0.5)
        assert not task.done()
        await holder.commit()
    await task
    rows = await sql(api, "SELECT envelope FROM secret_store WHERE ref = :r", r=ref)
    assert bytes(rows[0][0])[4:12] == kek_id(NEW)
