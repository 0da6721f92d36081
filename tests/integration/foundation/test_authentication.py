"""Admin-token authentication, caches, revocation and bootstrap seeding (foundation §6)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from caracal_api.admin_tokens.service import BANNER, seed_bootstrap
from caracal_api.auth import tokens as token_module
from caracal_api.kit.db import create_engine
from caracal_api.metrics import ADMIN_TOKEN_VERIFICATIONS
from tests.conftest import BOOTSTRAP_TOKEN, Api, AppFactory, assert_envelope, base_settings
from tests.fixtures import pg
from tests.integration.foundation.harness import (
    ServeProcess,
    cli_env,
    guard_envelopes,
    open_api,
    rows,
    run_cli,
    value,
)


@pytest.fixture(autouse=True)
def _envelopes(monkeypatch: pytest.MonkeyPatch) -> None:
    # foundation §18 items 15 and 16: every error response of these tests is checked.
    guard_envelopes(monkeypatch)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """One app for the module: these tests only add rows of their own."""
    async with open_api(database_dsn, redis_url) as built:
        yield built


def verifications(result: str) -> float:
    return ADMIN_TOKEN_VERIFICATIONS.labels(result)._value.get()


# foundation §18 item 17
async def test_malformed_credentials_are_401_without_a_lookup(api: Api) -> None:
    minted = await api.mint("read")
    token = minted["token"]
    malformed = [
        None,
        "",
        f"Basic {token}",
        "Basic dXNlcjpwYXNzd29yZA==",
        f"Token {token}",
        token,
        f"bearer {token}",
        f"Bearer{token}",
        "Bearer",
        "Bearer ",
        "Bearer      ",
        "Bearer \t",
        "Bearer " + "c" * 5000,
        "Bearer " + "c" * 4097,
    ]
    verifier = api.runtime.verifier
    before = verifier.lookups
    for header in malformed:
        headers = {} if header is None else {"Authorization": header}
        response = await api.get("/v1/zones", token="", headers=headers)
        assert_envelope(response, 401, "invalid_admin_token")
    assert verifier.lookups == before, "a malformed credential reached the database"
    # Well-formed but wrong: a prefix, a suffix, an unknown `cat_` token.
    wrong = [token[:-1], token[:10], token + "x", token + "A", "cat_" + "Z" * 43]
    for candidate in wrong:
        response = await api.get("/v1/zones", token=candidate)
        assert_envelope(response, 401, "invalid_admin_token")
    assert verifier.lookups == before + len(wrong)
    # Failures are never cached: each wrong token was looked up on its own.
    response = await api.get("/v1/zones", token=token[:-1])
    assert_envelope(response, 401, "invalid_admin_token")
    assert verifier.lookups == before + len(wrong) + 1
    # The right token, with surrounding whitespace trimmed, works.
    response = await api.get("/v1/zones", token="", headers={"Authorization": f"Bearer  {token} "})
    assert response.status_code == 200


# foundation §18 item 18
async def test_fresh_cache_and_hash_cache(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    argon2_runs = 0
    real_verify = token_module.verify_admin_token

    def counting(token_hash: str, plaintext: str) -> bool:
        nonlocal argon2_runs
        argon2_runs += 1
        return real_verify(token_hash, plaintext)

    token = (await api.mint("read"))["token"]
    monkeypatch.setattr(token_module, "verify_admin_token", counting)
    verifier = api.runtime.verifier
    lookups = verifier.lookups
    hits, verified = verifications("cache_hit"), verifications("verified")

    # Two requests within 1 s: one lookup, one Argon2 run.
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert verifier.lookups == lookups + 1
    assert argon2_runs == 1
    assert verifications("verified") == verified + 1
    assert verifications("cache_hit") == hits + 1

    # After the 1 s fresh window the row is read again, but Argon2 is not rerun.
    await asyncio.sleep(1.05)
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert verifier.lookups == lookups + 2
    assert argon2_runs == 1
    assert verifications("verified") == verified + 2

    # Concurrent verifications of one digest share one lookup.
    verifier.fresh.clear()
    responses = await asyncio.gather(*(api.get("/v1/zones", token=token) for _ in range(8)))
    assert {r.status_code for r in responses} == {200}
    assert verifier.lookups == lookups + 3
    assert argon2_runs == 1

    # The hash cache keeps a verified (digest, hash) for 10 minutes; once it is gone, Argon2
    # runs again.
    assert verifier.verified_hashes.ttl == 600
    assert verifier.fresh.ttl == 1.0
    verifier.fresh.clear()
    verifier.verified_hashes.clear()
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert argon2_runs == 2

    # A changed hash for the same digest is verified again (the cache key includes the hash).
    rejected = verifications("rejected")
    digest = hashlib.sha256(token.encode()).digest()
    async with api.runtime.engine.begin() as conn:
        await conn.execute(
            text("UPDATE admin_tokens SET token_hash = :h WHERE token_sha256 = :d"),
            {"h": "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0$" + "A" * 43, "d": digest},
        )
    verifier.fresh.clear()
    assert_envelope(await api.get("/v1/zones", token=token), 401, "invalid_admin_token")
    assert argon2_runs == 3
    assert verifications("rejected") == rejected + 1


# foundation §18 item 19
async def test_revocation_reaches_a_second_replica_within_one_second(
    make_api: AppFactory,
) -> None:
    first = await make_api()
    second = await make_api()
    minted = await first.mint("read")
    token = minted["token"]
    assert (await first.get("/v1/zones", token=token)).status_code == 200
    assert (await second.get("/v1/zones", token=token)).status_code == 200  # cached there

    response = await first.delete(f"/v1/admin-tokens/{minted['id']}")
    assert response.status_code == 204
    revoked_at = time.monotonic()
    # The replica that revoked it refuses it at once.
    assert_envelope(await first.get("/v1/zones", token=token), 401, "invalid_admin_token")
    # The other one within 1 s of the revocation.
    while True:
        sent_after = time.monotonic() - revoked_at
        response = await second.get("/v1/zones", token=token)
        if response.status_code == 401:
            break
        assert response.status_code == 200
        assert sent_after < 1.0, "a revoked token still worked on the second replica after 1 s"
        await asyncio.sleep(0.02)
    assert sent_after <= 1.25  # the first request sent after the 1 s bound, plus slack
    assert_envelope(response, 401, "invalid_admin_token")
    assert_envelope(await first.get("/v1/zones", token=token), 401, "invalid_admin_token")


# foundation §18 item 20
async def test_unauthenticated_mutations_change_nothing(api: Api) -> None:
    zone = await api.zone()
    path = f"/v1/zones/{zone['id']}"
    for token in ("", "cat_not-a-token", BOOTSTRAP_TOKEN + "x"):
        response = await api.patch(path, token=token, json={"name": "hijacked"})
        assert_envelope(response, 401, "invalid_admin_token")
        response = await api.delete(path, token=token)
        assert_envelope(response, 401, "invalid_admin_token")
    response = await api.patch(
        path, token="", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}, json={"name": "x"}
    )
    assert_envelope(response, 401, "invalid_admin_token")
    after = await api.get(path)
    assert after.status_code == 200
    assert after.json() == zone
    archived = await value(api, "SELECT archived_at FROM zones WHERE id = :id", id=zone["id"])
    assert archived is None


async def last_used(api: Api, token_id: str) -> Any:
    await api.runtime.verifier.drain()
    return await value(api, "SELECT last_used_at FROM admin_tokens WHERE id = :id", id=token_id)


# foundation §18 item 21
async def test_last_used_at_is_debounced(api: Api, make_api: AppFactory) -> None:
    assert api.runtime.settings.admin_token_last_used_debounce_sec == 60
    minted = await api.mint("read")
    token, token_id = minted["token"], minted["id"]
    assert await last_used(api, token_id) is None
    # Two quick requests.
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    first = await last_used(api, token_id)
    assert first is not None
    # Another verification inside the window (fresh cache gone) writes nothing.
    api.runtime.verifier.fresh.clear()
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert await last_used(api, token_id) == first
    ttl = await api.runtime.redis.ttl(f"api:admin_token_touched:{token_id}")
    assert 0 < ttl <= 60
    # With a debounce of 0 every verified request updates.
    eager = await make_api(admin_token_last_used_debounce_sec=0)
    assert (await eager.get("/v1/zones", token=token)).status_code == 200
    second = await last_used(eager, token_id)
    assert second > first
    eager.runtime.verifier.fresh.clear()
    assert (await eager.get("/v1/zones", token=token)).status_code == 200
    assert await last_used(eager, token_id) > second


# --- the real CLI -------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database() -> AsyncIterator[str]:
    """An empty migrated database of its own (no bootstrap row yet)."""
    admin = pg.admin_dsn()
    reason = await pg.server_unreachable(admin)
    if reason is not None:
        pytest.skip(f"PostgreSQL: {reason}")
    name = f"caracal_auth_{os.getpid()}_{secrets.token_hex(4)}"
    dsn = await pg.create_migrated_database(admin, name)
    yield dsn
    await pg.drop_database(admin, name)


async def bootstrap_rows(dsn: str) -> list[Any]:
    engine = create_engine(base_settings(dsn, ""), dsn, pool_size=1)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT id, token_sha256, revoked_at FROM admin_tokens"
                    " WHERE created_by = 'env-bootstrap' ORDER BY created_at, id"
                )
            )
            return list(result.all())
    finally:
        await engine.dispose()


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# foundation §18 item 22
@pytest.mark.slow
async def test_bootstrap_seeding_across_starts(fresh_database: str, tmp_path: Path) -> None:
    first_token = "cat_first-" + secrets.token_hex(16)
    second_token = "cat_second-" + secrets.token_hex(16)

    async with ServeProcess(
        cli_env(fresh_database, CARACAL_ADMIN_TOKEN=first_token), tmp_path
    ) as s:
        assert (await s.get("/v1/zones", first_token)).status_code == 200
    seeded = await bootstrap_rows(fresh_database)
    assert len(seeded) == 1
    assert bytes(seeded[0].token_sha256) == digest(first_token)
    assert seeded[0].revoked_at is None
    assert BANNER not in s.stderr

    # Restart with the same value: nothing inserted.
    async with ServeProcess(
        cli_env(fresh_database, CARACAL_ADMIN_TOKEN=first_token), tmp_path
    ) as s:
        assert (await s.get("/v1/zones", first_token)).status_code == 200
    assert await bootstrap_rows(fresh_database) == seeded

    # Restart with a new value: one inserted, the old one revoked.
    async with ServeProcess(
        cli_env(fresh_database, CARACAL_ADMIN_TOKEN=second_token), tmp_path
    ) as s:
        assert (await s.get("/v1/zones", second_token)).status_code == 200
        old = await s.get("/v1/zones", first_token)
        assert old.status_code == 401
        assert old.json()["error"] == "invalid_admin_token"
    rotated = await bootstrap_rows(fresh_database)
    assert len(rotated) == 2
    assert rotated[0].id == seeded[0].id
    assert rotated[0].revoked_at is not None
    assert bytes(rotated[1].token_sha256) == digest(second_token)
    assert rotated[1].revoked_at is None
    assert s.returncode == 0


# foundation §18 item 22 (concurrent starts of two replicas)
async def test_concurrent_seeding_leaves_one_live_bootstrap_row(fresh_database: str) -> None:
    settings = base_settings(fresh_database, "")
    engines = [create_engine(settings, fresh_database, pool_size=1) for _ in range(2)]
    try:
        # Without CARACAL_ADMIN_TOKEN (dev mode): exactly one replica generates a token.
        generated = await asyncio.gather(*(seed_bootstrap(e, None) for e in engines))
        assert len([g for g in generated if g is not None]) == 1
        live = [r for r in await bootstrap_rows(fresh_database) if r.revoked_at is None]
        assert len(live) == 1
        # With the same configured value on both.
        configured = "cat_same-" + secrets.token_hex(16)
        await asyncio.gather(*(seed_bootstrap(e, configured) for e in engines))
        live = [r for r in await bootstrap_rows(fresh_database) if r.revoked_at is None]
        assert len(live) == 1
        assert bytes(live[0].token_sha256) == digest(configured)
        # Several rounds at once, same value: still exactly one live row.
        await asyncio.gather(*(seed_bootstrap(e, configured) for e in engines * 3))
        live = [r for r in await bootstrap_rows(fresh_database) if r.revoked_at is None]
        assert len(live) == 1
    finally:
        for engine in engines:
            await engine.dispose()


BANNER_LINE = re.compile(
    r"^caracal-api: bootstrap admin token \(shown once\): (cat_[A-Za-z0-9_-]{43})$"
)


# foundation §18 item 23
@pytest.mark.slow
async def test_generated_bootstrap_token_is_shown_once(fresh_database: str, tmp_path: Path) -> None:
    env = cli_env(fresh_database)
    assert "CARACAL_ADMIN_TOKEN" not in env
    async with ServeProcess(env, tmp_path) as s:
        await asyncio.sleep(0.2)  # let the banner reach the file
        err_lines = s.stderr_so_far().splitlines()
        matches = [m for line in err_lines if (m := BANNER_LINE.match(line))]
        assert len(matches) == 1, err_lines
        token = matches[0].group(1)
        assert (await s.get("/v1/zones", token)).status_code == 200
        assert (await s.get("/v1/admin-tokens", token)).status_code == 200
    assert s.stderr.count(token) == 1
    assert token not in s.stdout
    lines = [line for line in s.stdout.splitlines() if line.strip()]
    assert lines, "no JSON log line was written"
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= record.keys()
    # A second start finds the live row: no banner, no new token; the first still works.
    async with ServeProcess(env, tmp_path) as again:
        assert (await again.get("/v1/zones", token)).status_code == 200
    assert BANNER not in again.stderr
    assert "cat_" not in again.stderr
    assert token not in again.stdout
    seeded = await bootstrap_rows(fresh_database)
    assert len(seeded) == 1
    assert seeded[0].revoked_at is None


# foundation §18 item 24
@pytest.mark.slow
async def test_token_create_cli_mints_a_working_approve_token(api: Api, database_dsn: str) -> None:
    env = cli_env(database_dsn)
    zone = await api.zone()
    created, bad_name, bad_zone = await asyncio.gather(
        run_cli("token", "create", "--name", "n", "--capability", "approve", env=env),
        run_cli("token", "create", "--name", "", env=env),
        run_cli("token", "create", "--name", "z", "--zone", "no-such-zone", env=env),
    )
    code, out, err = created
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    minted = json.loads(lines[0])
    assert set(minted) == {"id", "name", "scope", "capability", "zone_id", "token"}
    assert minted["name"] == "n"
    assert (minted["scope"], minted["capability"], minted["zone_id"]) == ("global", "approve", None)
    assert minted["token"].startswith("cat_")
    assert len(minted["token"]) == 47
    stored = await rows(
        api, "SELECT created_by, capability FROM admin_tokens WHERE id = :id", id=minted["id"]
    )
    assert [tuple(r) for r in stored] == [("cli", "approve")]
    # It works, as an approve token: reads yes, writes no.
    token = minted["token"]
    assert (await api.get("/v1/zones", token=token)).status_code == 200
    assert (await api.get(f"/v1/zones/{zone['id']}", token=token)).status_code == 200
    response = await api.post("/v1/zones", token=token, json={"name": "nope"})
    assert_envelope(response, 403, "admin_token_approve_only")
    for code, out, err in (bad_name, bad_zone):
        assert code == 2, (code, out, err)
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
    # A zone-scoped token from the CLI.
    code, out, err = await run_cli(
        "token", "create", "--name", "zoned", "--capability", "read", "--zone", zone["id"], env=env
    )
    assert code == 0, err
    zoned = json.loads(out)
    assert (zoned["scope"], zoned["zone_id"]) == ("zone", zone["id"])
    assert (await api.get(f"/v1/zones/{zone['id']}", token=zoned["token"])).status_code == 200


# foundation §18 item 25
@pytest.mark.slow
async def test_revoked_bootstrap_token_returns_after_restart(
    fresh_database: str, tmp_path: Path
) -> None:
    token = "cat_boot-" + secrets.token_hex(16)
    env = cli_env(fresh_database, CARACAL_ADMIN_TOKEN=token)
    async with ServeProcess(env, tmp_path) as s:
        listed = (await s.get("/v1/admin-tokens", token)).json()["items"]
        (boot,) = [t for t in listed if t["created_by"] == "env-bootstrap"]
        response = await s.request("DELETE", f"/v1/admin-tokens/{boot['id']}", token)
        assert response.status_code == 204
        for _ in range(3):
            response = await s.get("/v1/zones", token)
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_admin_token"
        await asyncio.sleep(1.1)  # past every cache window: still refused
        assert (await s.get("/v1/zones", token)).status_code == 401
    async with ServeProcess(env, tmp_path) as s:
        assert (await s.get("/v1/zones", token)).status_code == 200
        assert (await s.get("/v1/admin-tokens", token)).status_code == 200
    seeded = await bootstrap_rows(fresh_database)
    assert [r.revoked_at is None for r in seeded] == [False, True]
    assert all(bytes(r.token_sha256) == digest(token) for r in seeded)
