"""events.md §7 / §10 item 9: dead rows reach /ready and /metrics through the health query."""

from __future__ import annotations

import secrets

from sqlalchemy import text

from caracal_api.events.health import outbox_health
from tests.conftest import AppFactory


async def test_dead_rows_fail_readiness_and_show_in_metrics(make_api: AppFactory) -> None:
    probe = await make_api()
    async with probe.runtime.engine.connect() as conn:
        baseline = (await outbox_health(conn)).dead  # rows other tests may have left
    api = await make_api(api_ready_outbox_dead_max=baseline + 1)
    ids = [f"dead-{secrets.token_hex(6)}" for _ in range(2)]
    engine = api.runtime.engine
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO event_outbox (id, stream_name, payload_json, attempts,"
                    " available_at) SELECT i, 'test.dead', '{}', 100, 'infinity'"
                    " FROM unnest(CAST(:ids AS text[])) AS i"
                ),
                {"ids": ids[:1]},
            )
        assert (await api.get("/ready", token="")).status_code == 200
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO event_outbox (id, stream_name, payload_json, attempts,"
                    " available_at) VALUES (:i, 'test.dead', '{}', 100, 'infinity')"
                ),
                {"i": ids[1]},
            )
        ready = await api.get("/ready", token="")
        assert ready.status_code == 503
        body = ready.json()
        assert body["error"] == "outbox_dead_messages"
        assert (body["deadCount"], body["limit"]) == (baseline + 2, baseline + 1)
        metrics = (await api.get("/metrics", token="")).text
        dead_lines = [
            line for line in metrics.splitlines()
            if line.startswith("caracal_api_outbox_dead_total ")
        ]  # fmt: skip
        assert dead_lines
        assert float(dead_lines[0].split()[1]) == baseline + 2
        assert "caracal_api_outbox_health_up 1.0" in metrics
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM event_outbox WHERE id = ANY(CAST(:ids AS text[]))"),
                {"ids": ids},
            )
