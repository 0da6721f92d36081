"""PostgreSQL restarted under load (foundation §12, §14.2).

A real `caracal-api serve` runs on a private PostgreSQL cluster while writers create zones
and readers list and read them. The cluster is bounced twice: `pg_ctl restart -m fast` (a
sub-second gap) and a stop held for a few seconds before the start. The API must recover
without a restart of its own, answer only 503 `database_unavailable` while the database is
gone (never a 500), report `/ready` 503 `postgres_unreachable` during the outage and 200
after, and keep every write it acknowledged with a 2xx, together with its admin-audit record.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ServerProcess
from tests.faults.services import PostgresServer, RedisServer
from tests.faults.support import (
    caracal_env,
    client,
    fetch,
    running,
    unhandled_errors,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

WRITERS = 4
READERS = 2
RECOVERY_BOUND_S = 5.0


@dataclass
class Result:
    kind: str
    started: float
    ended: float
    status: int | None
    code: str | None = None
    request_id: str | None = None
    entity: str | None = None
    error: str | None = None


@dataclass
class Load:
    """Writers (zone creates) and readers (list + get) running until `stop` is set."""

    http: httpx.AsyncClient
    results: list[Result] = field(default_factory=list)
    committed: dict[str, str] = field(default_factory=dict)  # request id -> zone id
    reveal_path: str = ""
    revealed: list[str] = field(default_factory=list)  # request ids of 200 reveals
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def _call(self, kind: str, method: str, path: str, **kwargs: object) -> Result:
        started = time.monotonic()
        try:
            response = await self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            result = Result(kind, started, time.monotonic(), None, error=repr(exc))
            self.results.append(result)
            return result
        code = None
        body = None
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if response.status_code >= 400:
                code = body.get("error")
        result = Result(
            kind,
            started,
            time.monotonic(),
            response.status_code,
            code,
            response.headers.get("x-request-id"),
            body.get("id") if isinstance(body, dict) and response.status_code < 300 else None,
        )
        self.results.append(result)
        return result

    async def writer(self, n: int) -> None:
        while not self.stop.is_set():
            i = next(self._ids)
            request_id = f"pgfault-w{n}-{i}"
            result = await self._call(
                "write",
                "POST",
                "/v1/zones",
                json={"name": f"pg fault {n}-{i}"},
                headers={"x-request-id": request_id},
            )
            if result.status is not None and 200 <= result.status < 300:
                assert result.entity is not None
                self.committed[request_id] = result.entity
            await asyncio.sleep(0.005)

    async def revealer(self) -> None:
        """Audited reveals: each 200 committed an outbox row for caracal.audit.events."""
        n = 0
        while not self.stop.is_set():
            n += 1
            request_id = f"pgfault-r{n}"
            result = await self._call(
                "reveal", "GET", self.reveal_path, headers={"x-request-id": request_id}
            )
            if result.status == 200:
                self.revealed.append(request_id)
            await asyncio.sleep(0.02)

    async def reader(self) -> None:
        while not self.stop.is_set():
            await self._call("read", "GET", "/v1/zones?limit=20")
            known = list(self.committed.values())
            if known:
                await self._call("read", "GET", f"/v1/zones/{known[-1]}")
            await asyncio.sleep(0.005)

    async def ready(self) -> None:
        while not self.stop.is_set():
            await self._call("ready", "GET", "/ready")
            await asyncio.sleep(0.1)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [
            *(asyncio.create_task(self.writer(n)) for n in range(WRITERS)),
            *(asyncio.create_task(self.reader()) for _ in range(READERS)),
            asyncio.create_task(self.revealer()),
            asyncio.create_task(self.ready()),
        ]

    def writes_since(self, moment: float) -> list[Result]:
        return [r for r in self.results if r.kind == "write" and r.started >= moment]


async def first_success_after(load: Load, moment: float, timeout: float) -> float:
    """Seconds from `moment` to the end of the first successful write started after it."""

    async def succeeded() -> bool:
        return any(r.status == 201 for r in load.writes_since(moment))

    assert await wait_for(succeeded, timeout, 0.05), (
        f"no write succeeded within {timeout}s after PostgreSQL came back: "
        f"{[(r.status, r.code, r.error) for r in load.writes_since(moment)][-5:]}"
    )
    return min(r.ended for r in load.writes_since(moment) if r.status == 201) - moment


def audit_verify(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caracal_api", "audit", "verify"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_api_rides_through_postgres_restarts(
    private_postgres: PostgresServer, private_redis: RedisServer, tmp_path: Path
) -> None:
    dsn = private_postgres.dsn("caracal")
    env = caracal_env(
        dsn,
        private_redis.url,
        API_V1_RATE_LIMIT_PER_MIN="0",
        READY_RATE_LIMIT_PER_MIN="0",
        DB_POOL_TIMEOUT_MS="2000",
        # A batch whose mark failed because the database went away is published again
        # when its lease ends, and a message whose insert failed is retried by the ingest
        # reaper after this idle time: short values keep the test short.
        OUTBOX_LOCK_SEC="5",
        AUDIT_INGEST_CLAIM_IDLE_SEC="2",
    )
    with running(env, tmp_path) as server:
        assert server.process is not None
        pid = server.process.pid
        async with client(server, timeout=20) as http:
            zone = (await http.post("/v1/zones", json={"name": "reveals"})).json()["id"]
            app = await http.post(
                f"/v1/zones/{zone}/applications",
                json={"name": "agent", "registration_method": "managed"},
            )
            assert app.status_code == 201, app.text
            load = Load(
                http, reveal_path=f"/v1/zones/{zone}/applications/{app.json()['id']}/client-secret"
            )
            tasks = load.tasks()
            try:
                await asyncio.sleep(1.5)
                warm = load.writes_since(0)
                assert warm, "no write finished during the warm-up"
                assert all(r.status == 201 for r in warm), [(r.status, r.code) for r in warm]

                # 1. A quick bounce: pg_ctl restart -m fast.
                await asyncio.to_thread(private_postgres.restart, "fast")
                back = time.monotonic()
                quick_recovery = await first_success_after(load, back, RECOVERY_BOUND_S)

                # 2. A stop held long enough to watch the API answer without a database.
                await asyncio.sleep(1.0)
                await asyncio.to_thread(private_postgres.stop, "fast")
                down = time.monotonic()

                async def ready_says_postgres_down() -> bool:
                    return any(
                        r.kind == "ready" and r.started >= down and r.code == "postgres_unreachable"
                        for r in load.results
                    )

                assert await wait_for(ready_says_postgres_down, 10), "/ready never answered 503"
                await asyncio.sleep(2.0)
                failed_while_down = load.writes_since(down + 0.5)
                await asyncio.to_thread(private_postgres.start)
                back = time.monotonic()
                held_recovery = await first_success_after(load, back, RECOVERY_BOUND_S)

                async def ready_again() -> bool:
                    return any(
                        r.kind == "ready" and r.started >= back and r.status == 200
                        for r in load.results
                    )

                assert await wait_for(ready_again, RECOVERY_BOUND_S), "/ready stayed failing"
                stable_from = time.monotonic()
                await asyncio.sleep(2.0)
            finally:
                load.stop.set()
                await asyncio.gather(*tasks)

            # Nothing but successes and 503s naming the database.
            transport = [r for r in load.results if r.error is not None]
            assert not transport, transport[:5]
            for r in load.results:
                if r.status is not None and r.status < 300:
                    assert r.status in (200, 201), (r.kind, r.status)
                    continue
                assert r.status == 503, (r.kind, r.status, r.code)
                if r.kind == "ready":
                    # The database may vanish between /ready's SELECT 1 and its outbox query.
                    assert r.code in ("postgres_unreachable", "outbox_unreachable"), r
                else:
                    assert r.code == "database_unavailable", r
            assert any(r.status == 503 for r in failed_while_down), (
                "writes kept succeeding while PostgreSQL was stopped"
            )
            ready_down = [r for r in load.results if r.kind == "ready" and r.status == 503]
            assert any(r.code == "postgres_unreachable" for r in ready_down)
            # Once recovered, the API stays recovered.
            after = [r for r in load.results if r.started >= stable_from and r.kind != "ready"]
            assert after
            assert all(r.status in (200, 201) for r in after), [
                (r.kind, r.status, r.code) for r in after if r.status not in (200, 201)
            ][:5]

            # Nothing acknowledged was lost, and each change has its admin-audit record.
            committed = load.committed
            assert len(committed) > 20
            stored = await fetch(
                dsn, "SELECT id FROM zones WHERE id = ANY($1)", list(committed.values())
            )
            assert len(stored) == len(committed)
            audited = await fetch(
                dsn,
                "SELECT request_id FROM admin_audit_events WHERE request_id = ANY($1)"
                " AND status_code = 201",
                list(committed),
            )
            assert {r["request_id"] for r in audited} == set(committed)
            for zone_id in list(committed.values())[-3:]:
                assert (await http.get(f"/v1/zones/{zone_id}")).status_code == 200

            # The chainer caught up by itself and every chain verifies.
            async def all_chained() -> bool:
                rows = await fetch(
                    dsn, "SELECT count(*) AS n FROM admin_audit_events WHERE chain_seq IS NULL"
                )
                return bool(rows[0]["n"] == 0)

            assert await wait_for(all_chained, 15, 0.2), "admin-audit rows left unchained"

            # Every acknowledged reveal's event reached its stream and was ingested once.
            assert len(load.revealed) > 5

            async def events_delivered() -> bool:
                rows = await fetch(
                    dsn,
                    "SELECT count(*) FILTER (WHERE dispatched_at IS NULL) AS waiting,"
                    " count(*) AS total FROM event_outbox WHERE request_id = ANY($1)",
                    load.revealed,
                )
                return bool(rows[0]["waiting"] == 0 and rows[0]["total"] == len(load.revealed))

            assert await wait_for(events_delivered, 20, 0.2), "reveal events not dispatched"

            async def events_ingested() -> bool:
                rows = await fetch(
                    dsn,
                    "SELECT count(*) AS n FROM audit_events WHERE request_id = ANY($1)",
                    load.revealed,
                )
                return bool(rows[0]["n"] == len(load.revealed))

            assert await wait_for(events_ingested, 20, 0.2), "reveal events not ingested"

        # Same process throughout: recovered, never restarted.
        assert server.process.poll() is None
        assert server.process.pid == pid
        verify = audit_verify(server)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert all(json.loads(line)["ok"] for line in verify.stdout.splitlines())
        assert not unhandled_errors(server)
    print(
        f"\nwrites={len(load.writes_since(0))} committed={len(committed)}"
        f" reveals={len(load.revealed)}"
        f" quick_recovery={quick_recovery:.2f}s held_recovery={held_recovery:.2f}s"
    )
