"""The admin-audit hash chain: chainer, sweep, retries, verification (foundation §13.5, §13.6)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from caracal_api import lifecycle
from caracal_api.audit import records
from caracal_api.audit.chainer import chain
from caracal_api.kit.ids import uuid7
from caracal_api.zones import service as zone_service
from tests.conftest import AUDIT_KEY, Api, AppFactory, assert_envelope
from tests.integration.foundation.support import (
    GLOBAL_CHAIN,
    assert_chain_intact,
    canonical_hash,
    chain_mac,
    chain_rows,
    execute,
    fetch,
    fetch_one,
    legacy_hash,
    open_api,
    records_of,
    registered,
    unchained,
    unique,
    wait_chained,
    wait_records,
)

CLI = Path(sys.executable).parent / "caracal-api"
OTHER_KEY = bytes(range(200, 232))
HAS_APPS = registered("POST", "/v1/zones/{zoneId}/applications")
HAS_ACTIVATION = all(
    registered(method, path)
    for method, path in [
        ("GET", "/v1/policy-templates"),
        ("POST", "/v1/zones/{zoneId}/policies"),
        ("POST", "/v1/zones/{zoneId}/policy-sets"),
        ("POST", "/v1/zones/{zoneId}/policy-sets/{id}/versions"),
        ("POST", "/v1/zones/{zoneId}/policy-sets/{id}/activate"),
    ]
)
VERIFY_KEYS = {
    "zone_id",
    "ok",
    "rows_checked",
    "unchained_rows",
    "unsigned_rows",
    "head_seq",
    "first_break",
    "truncated",
    "next_from_seq",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module, with room for 20 concurrent requests."""
    async with open_api(database_dsn, redis_url, db_pool_max=30) as app:
        yield app


async def _mutate(api: Api, zone_id: str, count: int) -> None:
    responses = await asyncio.gather(
        *(api.patch(f"/v1/zones/{zone_id}", json={"name": f"change {i}"}) for i in range(count))
    )
    assert [r.status_code for r in responses] == [200] * count


async def _verify_http(api: Api, zone_id: str, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/v1/zones/{zone_id}/admin-audit/verify", params=params)
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == VERIFY_KEYS
    return result  # type: ignore[no-any-return]


def _cli_env(database_dsn: str, key: bytes | None = AUDIT_KEY) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARACAL_", "DATABASE_", "REDIS_", "AUDIT_", "STREAMS_", "SECRET_"))
    }
    env["DATABASE_URL"] = database_dsn
    if key is not None:
        env["AUDIT_HMAC_KEY"] = key.hex()
    return env


async def _cli_verify(
    database_dsn: str, zone_id: str, key: bytes | None = AUDIT_KEY
) -> tuple[int, list[dict[str, Any]]]:
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "audit",
        "verify",
        "--zone",
        zone_id,
        env=_cli_env(database_dsn, key),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    parsed = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    # stdout also carries the JSON log lines (foundation §14.7); results have no `level`.
    lines = [obj for obj in parsed if "level" not in obj]
    assert proc.returncode in (0, 1), err.decode()
    return int(proc.returncode or 0), lines


# --- item 46 ---------------------------------------------------------------------------------


# foundation §18 item 46
async def test_concurrent_mutations_are_chained_in_order(api: Api) -> None:
    zone = await api.zone(unique("chained"))
    await _mutate(api, zone["id"], 20)
    started = time.monotonic()
    assert await wait_chained(api, zone["id"], timeout=2.0)
    assert time.monotonic() - started < 2.0
    rows = await chain_rows(api, zone["id"])
    assert len(rows) == 21  # the create and 20 updates
    seqs = [r.chain_seq for r in rows]
    assert seqs == list(range(1, 22))
    assert_chain_intact(rows, key=AUDIT_KEY)
    result = await _verify_http(api, zone["id"])
    assert result == {
        "zone_id": zone["id"],
        "ok": True,
        "rows_checked": 21,
        "unchained_rows": 0,
        "unsigned_rows": 0,
        "head_seq": 21,
        "first_break": None,
        "truncated": False,
        "next_from_seq": None,
    }


# foundation §18 item 46 (no key configured: chained, unsigned)
async def test_chain_without_hmac_key(make_api: AppFactory) -> None:
    api = await make_api(audit_hmac_key=None)
    zone = await api.zone(unique("unsigned"))
    await _mutate(api, zone["id"], 3)
    assert await wait_chained(api, zone["id"])
    rows = await chain_rows(api, zone["id"])
    assert [r.chain_hmac for r in rows] == [None] * 4
    assert_chain_intact(rows, key=None)
    result = await _verify_http(api, zone["id"])
    assert (result["ok"], result["rows_checked"], result["unsigned_rows"]) == (True, 4, 0)
    # With a key configured, the rows chained without one are counted, not broken.
    keyed = await make_api()
    response = await keyed.get(f"/v1/zones/{zone['id']}/admin-audit/verify")
    assert (response.json()["ok"], response.json()["unsigned_rows"]) == (True, 4)


# --- item 47 ---------------------------------------------------------------------------------


# foundation §18 item 47: request transactions never take the chain lock
async def test_mutations_do_not_wait_for_the_chain_lock(api: Api) -> None:
    zone = await api.zone(unique("lock free"))
    assert await wait_chained(api, zone["id"])
    async with api.runtime.engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": zone["id"]})
        try:
            started = time.monotonic()
            await asyncio.wait_for(_mutate(api, zone["id"], 10), timeout=10)
            assert time.monotonic() - started < 5
            # Committed and answered, waiting only to be chained.
            assert await unchained(api, zone["id"]) == 10
        finally:
            await holder.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": zone["id"]})
    assert await wait_chained(api, zone["id"])
    assert_chain_intact(await chain_rows(api, zone["id"]))


# foundation §18 item 47: one zone is as fast as twenty
ROUNDS = 3


@pytest.mark.skipif(not HAS_APPS, reason="applications routes not served")
async def test_parallel_creates_in_one_zone_match_twenty_zones(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caracal_api.applications import endpoints
    from caracal_api.applications.secrets import new_client_secret

    issued = await new_client_secret()

    async def cached_secret() -> tuple[str, str]:
        return issued  # the Argon2 cost is not what this test measures

    monkeypatch.setattr(endpoints, "new_client_secret", cached_secret)
    one = await api.zone(unique("one zone"))
    many = [await api.zone(unique("many zones")) for _ in range(20)]

    async def create(zone_id: str, name: str) -> None:
        response = await api.post(
            f"/v1/zones/{zone_id}/applications",
            json={"name": name, "registration_method": "managed"},
        )
        assert response.status_code == 201, response.text

    async def timed(targets: list[tuple[str, str]]) -> float:
        started = time.monotonic()
        await asyncio.gather(*(create(z, n) for z, n in targets))
        return time.monotonic() - started

    await timed([(one["id"], "warm-up")] + [(z["id"], "warm-up") for z in many])
    # Interleaved rounds, best of each: a garbage collection or a dispatcher burst on a
    # shared two-core host must not decide the comparison; a per-zone wait would show
    # in every round (twenty serialised creates cost about twenty times one).
    same: list[float] = []
    spread: list[float] = []
    for round_ in range(ROUNDS):
        same.append(await timed([(one["id"], f"app {round_}.{i}") for i in range(20)]))
        spread.append(await timed([(z["id"], f"app {round_}") for z in many]))
    assert min(same) < max(3 * min(spread), min(spread) + 0.3), (same, spread)
    assert await wait_chained(api, one["id"])
    rows = await chain_rows(api, one["id"])
    assert len(rows) == 2 + 20 * ROUNDS  # the zone, the warm-up, every round
    assert_chain_intact(rows)


# foundation §18 item 47: mutations, activations and the chainer never deadlock
async def test_mutations_and_chainer_never_deadlock(api: Api) -> None:
    zone = await api.zone(unique("no deadlock"))
    zone_id = zone["id"]
    stop = asyncio.Event()

    async def chainer() -> int:
        total = 0
        while not stop.is_set():
            total += await chain(api.runtime.engine, zone_id, AUDIT_KEY)
            await asyncio.sleep(0)
        return total

    async def writes() -> None:
        for round_ in range(3):
            jobs = [
                api.patch(f"/v1/zones/{zone_id}", json={"name": f"r{round_} {i}"}) for i in range(6)
            ]
            if HAS_APPS:
                jobs += [
                    api.post(
                        f"/v1/zones/{zone_id}/applications",
                        json={"name": f"r{round_} app {i}", "registration_method": "managed"},
                    )
                    for i in range(2)
                ]
            if HAS_ACTIVATION:
                jobs.append(_activate_once(api, zone_id))
            responses = await asyncio.gather(*jobs)
            for response in responses:
                assert response.status_code < 300, response.text

    chainers = [asyncio.create_task(chainer()) for _ in range(2)]
    try:
        await asyncio.wait_for(writes(), timeout=30)
    finally:
        stop.set()
        await asyncio.gather(*chainers)
    assert await wait_chained(api, zone_id)
    assert_chain_intact(await chain_rows(api, zone_id))


async def _activate_once(api: Api, zone_id: str) -> Any:
    templates = (await api.get("/v1/policy-templates")).json()
    content = templates[0]["content"]
    policy = await api.post(
        f"/v1/zones/{zone_id}/policies",
        json={"name": f"p {uuid7()}", "content": content},
    )
    assert policy.status_code == 201, policy.text
    policy_set = await api.post(f"/v1/zones/{zone_id}/policy-sets", json={"name": f"set {uuid7()}"})
    assert policy_set.status_code == 201, policy_set.text
    set_id = policy_set.json()["id"]
    version = await api.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/versions",
        json={"manifest": [{"policy_version_id": policy.json()["version_id"]}]},
    )
    assert version.status_code == 201, version.text
    return await api.post(
        f"/v1/zones/{zone_id}/policy-sets/{set_id}/activate",
        json={"version_id": version.json()["id"]},
    )


# foundation §18 item 47: 40001 / 40P01 re-run the whole transaction, 3 attempts at most
@pytest.mark.parametrize("failures", [2, 5])
async def test_serialization_failures_are_retried(
    api: Api, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    zone = await api.zone(unique("retried"))
    real_update = zone_service.update_zone
    attempts = 0

    async def flaky(session: Any, ctx: Any, zone_id: str, fields: dict[str, Any]) -> Any:
        nonlocal attempts
        attempts += 1
        result = await real_update(session, ctx, zone_id, fields)
        if attempts <= failures:
            code = "40001" if attempts % 2 else "40P01"
            await session.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{code}'; END $$")
            )
        return result

    monkeypatch.setattr(zone_service, "update_zone", flaky)
    response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": "after retries"})
    monkeypatch.undo()
    assert attempts == 3
    stored = await fetch_one(api, "SELECT name FROM zones WHERE id = :id", id=zone["id"])
    assert stored is not None
    rows = await records_of(api, response.headers["x-request-id"])
    if failures < 3:
        assert response.status_code == 200, response.text
        assert stored.name == "after retries"
        assert [r.status_code for r in rows] == [200]  # failed attempts left nothing
    else:
        assert response.status_code >= 500
        assert_envelope(response, response.status_code, response.json()["error"])
        assert stored.name == zone["name"]
        rows = await wait_records(api, response.headers["x-request-id"])
        assert [r.status_code for r in rows] == [response.status_code]


# --- item 48 ---------------------------------------------------------------------------------


async def _orphan(api: Api, zone_id: str | None) -> dict[str, Any]:
    """A committed record whose writer died before scheduling the chainer."""
    path = f"/v1/zones/{zone_id}" if zone_id else "/v1/admin-tokens"
    async with api.runtime.engine.begin() as conn:
        record = records.build_record(
            records.RequestFacts(uuid7(), "PATCH", path, None),
            status_code=200,
            occurred_at=await records.transaction_now(conn),
            payload={"rls_mode": "control_plane_wildcard", "rls_zone_guc": "*"},
            zone_id=zone_id,
        )
        await records.insert(conn, record)
    return record


# foundation §18 item 48
async def test_sweep_chains_failure_records_and_orphans(make_api: AppFactory) -> None:
    api = await make_api()
    zone = await api.zone(unique("swept"))
    assert await wait_chained(api, zone["id"])
    bad = await api.patch(f"/v1/zones/{zone['id']}", json={"slug": "Not A Slug"})
    assert_envelope(bad, 400, "invalid_zone")
    orphan = await _orphan(api, zone["id"])
    global_orphan = await _orphan(api, None)
    assert await unchained(api, zone["id"]) >= 1
    api.runtime.run_dispatcher = True  # the sweep runs where the dispatcher runs
    sweep = lifecycle.ChainSweep()
    started = time.monotonic()
    await sweep.start(api.runtime)
    try:
        assert await wait_chained(api, zone["id"], timeout=2.0)
        assert await wait_chained(api, GLOBAL_CHAIN, timeout=2.0)
        assert time.monotonic() - started < 2.0
    finally:
        await sweep.stop(api.runtime, 1.0)
        api.runtime.run_dispatcher = False
    failure = (await wait_records(api, bad.headers["x-request-id"]))[0]
    assert failure.status_code == 400
    assert failure.chain_seq is not None
    for record in (orphan, global_orphan):
        row = await fetch_one(
            api, "SELECT chain_seq FROM admin_audit_events WHERE id = :id", id=record["id"]
        )
        assert row is not None
        assert row.chain_seq is not None
    assert_chain_intact(await chain_rows(api, zone["id"]))


# --- item 49 ---------------------------------------------------------------------------------


async def _chained_zone(api: Api, changes: int) -> dict[str, Any]:
    zone = await api.zone(unique("verified"))
    for i in range(changes):
        response = await api.patch(f"/v1/zones/{zone['id']}", json={"name": f"v{i}"})
        assert response.status_code == 200
    assert await wait_chained(api, zone["id"])
    return zone


def _break(result: dict[str, Any]) -> tuple[Any, ...]:
    first = result["first_break"]
    assert set(first) == {"chain_seq", "id", "reason"}
    return result["ok"], first["chain_seq"], first["reason"], result["rows_checked"]


async def _tamper_path(api: Api, zone_id: str, seq: int) -> Any:
    row = await fetch_one(
        api,
        "SELECT id, path FROM admin_audit_events WHERE zone_id = :z AND chain_seq = :s",
        z=zone_id,
        s=seq,
    )
    assert row is not None
    await execute(
        api, "UPDATE admin_audit_events SET path = path || '/x' WHERE id = :id", id=row.id
    )
    return row


@contextmanager
def _keys(api: Api, key: bytes, previous: tuple[bytes, ...] = ()) -> Iterator[None]:
    """Verify with other HMAC keys configured (the chainer keeps its own)."""
    saved = api.runtime.settings
    api.runtime.settings = dataclasses.replace(
        saved, audit_hmac_key=key, audit_hmac_keys_previous=previous
    )
    try:
        yield
    finally:
        api.runtime.settings = saved


# foundation §18 item 49
async def test_verify_reports_each_break(api: Api) -> None:
    zone = await _chained_zone(api, 4)
    zone_id = zone["id"]
    intact = await _verify_http(api, zone_id)
    assert (intact["ok"], intact["rows_checked"], intact["head_seq"]) == (True, 5, 5)
    assert intact["first_break"] is None

    # Tampered content.
    row3 = await _tamper_path(api, zone_id, 3)
    try:
        result = await _verify_http(api, zone_id)
        assert _break(result) == (False, 3, "content_hash_mismatch", 3)
        assert result["first_break"]["id"] == row3.id
        assert (result["head_seq"], result["truncated"], result["next_from_seq"]) == (
            5,
            False,
            None,
        )
    finally:
        await execute(
            api, "UPDATE admin_audit_events SET path = :p WHERE id = :id", p=row3.path, id=row3.id
        )

    # A broken link.
    row4 = await fetch_one(
        api,
        "SELECT id, prev_content_sha256 FROM admin_audit_events WHERE zone_id = :z"
        " AND chain_seq = 4",
        z=zone_id,
    )
    assert row4 is not None
    await execute(
        api,
        "UPDATE admin_audit_events SET prev_content_sha256 = :p WHERE id = :id",
        p="f" * 64,
        id=row4.id,
    )
    try:
        assert _break(await _verify_http(api, zone_id)) == (False, 4, "prev_link_mismatch", 4)
    finally:
        await execute(
            api,
            "UPDATE admin_audit_events SET prev_content_sha256 = :p WHERE id = :id",
            p=row4.prev_content_sha256,
            id=row4.id,
        )

    # A wrong key; the right one listed as previous still verifies.
    with _keys(api, OTHER_KEY):
        assert _break(await _verify_http(api, zone_id)) == (False, 1, "hmac_mismatch", 1)
    with _keys(api, OTHER_KEY, (AUDIT_KEY,)):
        assert (await _verify_http(api, zone_id))["ok"] is True

    # A deleted row.
    victim = await fetch(
        api, "SELECT * FROM admin_audit_events WHERE zone_id = :z AND chain_seq = 2", z=zone_id
    )
    await execute(
        api, "DELETE FROM admin_audit_events WHERE zone_id = :z AND chain_seq = 2", z=zone_id
    )
    try:
        result = await _verify_http(api, zone_id)
        assert _break(result) == (False, 3, "sequence_gap", 2)
        assert result["head_seq"] == 5
    finally:
        values = victim[0]._asdict()
        values["payload_json"] = json.dumps(values["payload_json"])
        columns = ", ".join(values)
        binds = ", ".join(
            "CAST(:payload_json AS jsonb)" if c == "payload_json" else f":{c}" for c in values
        )
        await execute(api, f"INSERT INTO admin_audit_events ({columns}) VALUES ({binds})", **values)
    assert (await _verify_http(api, zone_id))["ok"] is True


# foundation §18 item 49: the CLI exits 0 / 1 and prints the same object as the route
@pytest.mark.slow
async def test_cli_verify_matches_the_route(api: Api, database_dsn: str) -> None:
    intact = (await _chained_zone(api, 2))["id"]
    tampered = (await _chained_zone(api, 2))["id"]
    legacy = await _legacy_chain(api)
    await _tamper_path(api, tampered, 2)
    expected = {z: await _verify_http(api, z) for z in (intact, tampered, legacy)}
    with _keys(api, OTHER_KEY):
        wrong_key = await _verify_http(api, intact)
    runs = await asyncio.gather(
        _cli_verify(database_dsn, intact),
        _cli_verify(database_dsn, tampered),
        _cli_verify(database_dsn, legacy),
        _cli_verify(database_dsn, intact, key=OTHER_KEY),
    )
    assert runs[0] == (0, [expected[intact]])
    assert runs[1] == (1, [expected[tampered]])
    assert expected[tampered]["first_break"]["reason"] == "content_hash_mismatch"
    assert runs[2] == (0, [expected[legacy]])
    assert runs[3] == (1, [wrong_key])
    assert wrong_key["first_break"]["reason"] == "hmac_mismatch"


# foundation §18 item 49: from_seq continues a verification
async def test_verify_from_seq(api: Api) -> None:
    zone = await _chained_zone(api, 3)
    result = await _verify_http(api, zone["id"], from_seq=3)
    assert (result["ok"], result["rows_checked"], result["head_seq"]) == (True, 2, 4)
    for bad in ("0", "-1", "abc", ""):
        response = await api.get(f"/v1/zones/{zone['id']}/admin-audit/verify?from_seq={bad}")
        assert_envelope(response, 400, "invalid_query")
    unknown = await _verify_http(api, "no-such-zone-" + uuid7())
    assert (unknown["ok"], unknown["rows_checked"], unknown["head_seq"]) == (True, 0, None)


LEGACY_PAYLOADS: list[dict[str, Any] | None] = [
    {
        "rls_mode": "control_plane_wildcard",
        "rls_zone_guc": "*",
        "change_kind": "update",
        "changed_fields": ["name"],
        "zz_extra": "ünïcode",
        "ab": 1,
    },
    {
        "dcr_registration_disabled": True,
        "dcr_shutdown_mode": "keep_live",
        "live_dcr_applications": 2,
        "revoked_applications": 0,
        "revoked_authority_records": 0,
        "terminated_sessions": 0,
        "revoked_delegations": 0,
    },
    None,
]


async def _legacy_chain(api: Api) -> str:
    """A chain of three legacy-format rows (as other writers store them) and one of ours."""
    zone_id = "legacy-" + uuid7()
    base = datetime.now(UTC) - timedelta(minutes=5)
    for n, payload in enumerate(LEGACY_PAYLOADS):
        values: dict[str, Any] = {
            "id": uuid7(),
            "request_id": uuid7(),
            "actor_id": "legacy-actor",
            "actor_name": "legacy",
            "actor_scope": "global",
            "action": f"PATCH /v1/zones/{zone_id}",
            "method": "PATCH",
            "path": f"/v1/zones/{zone_id}",
            "zone_id": zone_id,
            "entity_type": "zones",
            "entity_id": zone_id,
            "status_code": 200,
            "payload_json": payload,
            "occurred_at": base + timedelta(seconds=n, microseconds=123456),
        }
        values["content_sha256"] = legacy_hash(values)
        # Millisecond timestamps (and the key order) make the two formats differ.
        assert values["content_sha256"] != canonical_hash(values)
        await execute(
            api,
            "INSERT INTO admin_audit_events (id, request_id, actor_id, actor_name, actor_scope,"
            " action, method, path, zone_id, entity_type, entity_id, status_code, payload_json,"
            " occurred_at, content_sha256) VALUES (:id, :request_id, :actor_id, :actor_name,"
            " :actor_scope, :action, :method, :path, :zone_id, :entity_type, :entity_id,"
            " :status_code, CAST(:payload_json AS jsonb), :occurred_at, :content_sha256)",
            **{**values, "payload_json": None if payload is None else json.dumps(payload)},
        )
    await _orphan(api, zone_id)
    assert await chain(api.runtime.engine, zone_id, AUDIT_KEY) == 4
    return zone_id


# foundation §18 item 49: rows of other Caracal writers (legacy hash format) verify
async def test_legacy_rows_verify(api: Api) -> None:
    zone_id = await _legacy_chain(api)
    rows = await chain_rows(api, zone_id)
    assert [r.chain_seq for r in rows] == [1, 2, 3, 4]
    prev = ""
    for row in rows[:3]:
        assert row.content_sha256 == legacy_hash(row._asdict())
    for row in rows:
        assert row.chain_hmac == chain_mac(row.content_sha256, prev)
        prev = row.content_sha256
    assert rows[3].content_sha256 == canonical_hash(rows[3]._asdict())
    result = await _verify_http(api, zone_id)
    assert (result["ok"], result["rows_checked"], result["first_break"]) == (True, 4, None)
    # A legacy row whose payload is altered no longer matches either format.
    first = rows[0].id
    await execute(
        api,
        "UPDATE admin_audit_events SET payload_json = payload_json || '{\"ab\": 2}' WHERE id = :id",
        id=first,
    )
    assert _break(await _verify_http(api, zone_id)) == (False, 1, "content_hash_mismatch", 1)


# --- item 50 ---------------------------------------------------------------------------------

CHAINER_SCRIPT = """
import asyncio, sys, time
from sqlalchemy.ext.asyncio import create_async_engine
from caracal_api.audit.chainer import chain
from caracal_api.kit.db import sqlalchemy_url

async def main(dsn, key, hmac_hex, seconds):
    engine = create_async_engine(sqlalchemy_url(dsn), pool_size=2)
    total = await chain(engine, key, bytes.fromhex(hmac_hex))
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        total += await chain(engine, key, bytes.fromhex(hmac_hex))
        await asyncio.sleep(0.002)
    print(total, flush=True)
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


# foundation §18 item 50
@pytest.mark.slow
async def test_two_chainer_processes_never_share_a_seq(api: Api, database_dsn: str) -> None:
    zone_id = "two-chainers-" + uuid7()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHAINER_SCRIPT,
            database_dsn,
            zone_id,
            AUDIT_KEY.hex(),
            "1.5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"ready"
    inserted = 0
    for _ in range(40):
        for _ in range(random.randint(1, 8)):
            await _orphan(api, zone_id)
            inserted += 1
        await asyncio.sleep(0.03)
    totals = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        totals.append(int(out.split()[-1]))
    await chain(api.runtime.engine, zone_id, AUDIT_KEY)  # whatever came after the last pass
    rows = await chain_rows(api, zone_id)
    assert len(rows) == inserted
    assert len({r.chain_seq for r in rows}) == inserted
    assert_chain_intact(rows)
    assert sum(totals) <= inserted
