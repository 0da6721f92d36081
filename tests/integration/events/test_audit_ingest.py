"""events.md §6 / §10 items 14–21, 45–47: the audit ingest worker on real Redis + PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from caracal_api.config import Settings
from caracal_api.events import audit_stream, outbox
from caracal_api.events.audit_ingest import GROUP, AuditIngest, ensure_partitions, month_windows
from caracal_api.events.dispatcher import Dispatcher
from tests.integration.events.events_helpers import TcpProxy, base_settings, wait_until

KEY = bytes.fromhex("11" * 16 + "22" * 16)
OLD_KEY = bytes.fromhex("33" * 16 + "44" * 16)
OTHER_KEY = bytes.fromhex("55" * 16 + "66" * 16)


@pytest.fixture
def streams(stream_prefix: str) -> tuple[str, str]:
    return f"{stream_prefix}.audit", f"{stream_prefix}.audit.dlq"


@pytest.fixture
async def clean_streams(
    redis_client: aioredis.Redis, streams: tuple[str, str]
) -> AsyncIterator[tuple[str, str]]:
    yield streams
    await redis_client.delete(*streams)


def ingest_settings(**kw: Any) -> Settings:
    return replace(base_settings(), audit_hmac_key=KEY, **kw)


def new_worker(
    settings: Settings,
    engine: AsyncEngine,
    redis: aioredis.Redis,
    streams: tuple[str, str],
    **kw: Any,
) -> AuditIngest:
    return AuditIngest(
        settings, engine, redis, stream=streams[0], dlq_stream=streams[1], upkeep=False, **kw
    )


@asynccontextmanager
async def running(worker: AuditIngest) -> AsyncIterator[AuditIngest]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop(grace=10)
        await asyncio.wait_for(task, 10)


def event_fields(zone_id: str, key: bytes | None = KEY, **over: Any) -> dict[str, str]:
    payload = audit_stream.build_audit_payload(
        zone_id=zone_id,
        event_type=over.pop("event_type", "credential_revealed"),
        request_id=over.pop("request_id", f"req-{uuid.uuid4().hex[:8]}"),
        decision=over.pop("decision", "allow"),
        metadata=over.pop("metadata", {"application_id": "app-1"}),
        key=key,
    )
    return {k: str(v) for k, v in payload.items() if v is not None}


async def stored(engine: AsyncEngine, zone_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT * FROM audit_events WHERE zone_id = :z ORDER BY chain_seq"),
                {"z": zone_id},
            )
        ).all()
    return [dict(r._mapping) for r in rows]


# Independent recomputation of §6.3 in SQL (PostgreSQL's canonical jsonb text, exact epoch).
_RECOMPUTE = text(
    """
    SELECT id, chain_seq, content_sha256, prev_content_sha256, chain_hmac,
      encode(sha256(convert_to(
        id || chr(31) || zone_id || chr(31) || event_type || chr(31) ||
        coalesce(request_id, '') || chr(31) || coalesce(decision, '') || chr(31) ||
        coalesce(policy_set_id, '') || chr(31) || coalesce(policy_set_version_id, '') ||
        chr(31) || coalesce(manifest_sha, '') || chr(31) ||
        coalesce(evaluation_status, '') || chr(31) ||
        coalesce(determining_policies_json::text, 'null') || chr(31) ||
        coalesce(diagnostics_json::text, 'null') || chr(31) ||
        coalesce(metadata_json::text, 'null') || chr(31) ||
        (EXTRACT(EPOCH FROM occurred_at) * 1000000000)::numeric(38, 0)::text,
        'UTF8')), 'hex') AS recomputed
    FROM audit_events WHERE zone_id = :z ORDER BY chain_seq
    """
)


async def verify_chain(engine: AsyncEngine, zone_id: str, keys: list[bytes]) -> int:
    """Check seq, prev links, content hashes and HMACs of a zone chain; returns its length."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_RECOMPUTE, {"z": zone_id})).all()
    prev = ""
    for n, row in enumerate(rows, start=1):
        assert row.chain_seq == n, (n, row)
        assert row.content_sha256 == row.recomputed, row.id
        assert (row.prev_content_sha256 or "") == prev, row.id
        if row.chain_hmac is not None:
            message = f"{row.content_sha256}|{prev}".encode()
            assert any(
                hmac.compare_digest(
                    hmac.new(k, message, hashlib.sha256).hexdigest(), row.chain_hmac
                )
                for k in keys
            ), row.id
        prev = row.content_sha256
    return len(rows)


async def dlq_entries(redis: aioredis.Redis, dlq: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode(errors="replace") for k, v in f.items()}
        for _i, f in await redis.xrange(dlq)
    ]


async def pending_count(redis: aioredis.Redis, stream: str) -> int:
    info = await redis.xpending(stream, GROUP)
    return int(info["pending"])


async def test_reveal_event_published_by_dispatcher_is_ingested_and_chained(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    payload = audit_stream.build_audit_payload(
        zone_id=zone,
        event_type="credential_revealed",
        request_id="req-reveal-1",
        decision="allow",
        metadata={
            "credential": "application_client_secret",
            "application_id": "app-9",
            "application_name": "Bots",
            "actor": "admin:t1",
        },
        key=KEY,
    )
    async with AsyncSession(engine) as session, session.begin():
        await outbox.record(session, stream, payload, request_id="req-reveal-1")
    settings = ingest_settings(streams_hmac_key=KEY)
    worker = new_worker(settings, engine, redis_client, clean_streams)
    async with running(worker):
        await asyncio.sleep(0.3)  # the worker is blocked in XREADGROUP
        await Dispatcher(settings, engine, redis_client, listen=False).cycle()
        published = time.monotonic()
        assert await wait_until(lambda: worker.stats.inserted >= 1, 2, 0.005)
        latency = time.monotonic() - published
    assert latency < 1.0
    (entry,) = [f for _i, f in await redis_client.xrange(stream)]
    fields = {k.decode(): v.decode() for k, v in entry.items()}
    assert list(fields) == ["outbox_id", "data", "id", "sig", "_sig"]
    assert fields["id"] == "req-reveal-1"
    data = json.loads(fields["data"])
    assert data["event_type"] == "credential_revealed"
    assert data["metadata_json"]["application_id"] == "app-9"
    assert fields["sig"] == hmac.new(KEY, fields["data"].encode(), hashlib.sha256).hexdigest()
    (row,) = await stored(engine, zone)
    assert row["ingest_signature"] == fields["sig"]
    assert row["chain_seq"] == 1
    assert row["prev_content_sha256"] is None
    assert row["request_id"] == "req-reveal-1"
    assert row["evaluation_status"] == "complete"
    assert await verify_chain(engine, zone, [KEY]) == 1
    assert await pending_count(redis_client, stream) == 0


async def test_duplicate_delivery_and_tamper_on_replay(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    fields = event_fields(zone)
    worker = new_worker(ingest_settings(), engine, redis_client, clean_streams)
    async with running(worker):
        await redis_client.xadd(stream, fields)
        await redis_client.xadd(stream, fields)
        assert await wait_until(lambda: worker.stats.duplicates >= 1, 3)
        data = json.loads(fields["data"])
        data["metadata_json"]["application_id"] = "app-tampered"
        forged = json.dumps(data, separators=(",", ":"))
        tampered = {
            "id": fields["id"],
            "data": forged,
            "sig": hmac.new(KEY, forged.encode(), hashlib.sha256).hexdigest(),
        }
        await redis_client.xadd(stream, tampered)
        assert await wait_until(lambda: worker.stats.dead_lettered >= 1, 3)
    assert len(await stored(engine, zone)) == 1
    async with engine.connect() as conn:
        alerts = (
            await conn.execute(
                text("SELECT event_id, kind, detail FROM audit_ingest_alerts WHERE zone_id = :z"),
                {"z": zone},
            )
        ).all()
    assert len(alerts) == 1
    assert alerts[0].kind == "content_mismatch_on_replay"
    assert alerts[0].detail.startswith("stored=")
    assert " incoming=" in alerts[0].detail
    (entry,) = await dlq_entries(redis_client, dlq)
    assert entry["reason"] == "tamper_on_replay"
    assert entry["src_data"] == forged
    assert await pending_count(redis_client, stream) == 0


async def test_bad_messages_go_to_the_dlq_and_are_acknowledged(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    good = event_fields(zone)

    def signed(data: str) -> dict[str, str]:
        return {
            "id": "r",
            "data": data,
            "sig": hmac.new(KEY, data.encode(), hashlib.sha256).hexdigest(),
        }

    base = json.loads(good["data"])
    cases: list[tuple[dict[str, str], str]] = [
        ({"id": "r", "sig": "00"}, "missing_data_field"),
        ({"id": "r", "data": good["data"]}, "hmac_verify_failed"),
        ({**good, "sig": "not-hex"}, "hmac_verify_failed"),
        (
            {**good, "sig": hmac.new(OTHER_KEY, good["data"].encode(), hashlib.sha256).hexdigest()},
            "hmac_verify_failed",
        ),
        (signed("{not json"), "json_parse_error"),
        (signed(json.dumps({k: v for k, v in base.items() if k != "id"})), "json_parse_error"),
        (signed(json.dumps({k: v for k, v in base.items() if k != "zone_id"})), "json_parse_error"),
        (signed(json.dumps({**base, "occurred_at": "yesterday"})), "json_parse_error"),
    ]
    worker = new_worker(ingest_settings(), engine, redis_client, clean_streams)
    async with running(worker):
        ids = [await redis_client.xadd(stream, f) for f, _ in cases]
        assert await wait_until(lambda: worker.stats.dead_lettered >= len(cases), 5)
    entries = await dlq_entries(redis_client, dlq)
    assert [e["reason"].split(":", 1)[0] for e in entries] == [r for _, r in cases]
    for entry, entry_id, (fields, _reason) in zip(entries, ids, cases, strict=True):
        assert entry["src_id"] == entry_id.decode()
        assert abs(int(entry["received_at"]) - time.time() * 1000) < 60_000
        for name, value in fields.items():
            if name != "id":  # src_id is the stream entry id
                assert entry[f"src_{name}"] == value
    assert entries[4]["reason"].startswith("json_parse_error:")
    assert len(entries[4]["reason"]) > len("json_parse_error:")
    assert await pending_count(redis_client, stream) == 0
    assert await stored(engine, zone) == []


async def test_nul_characters_are_stripped(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    fields = event_fields(
        zone,
        metadata={"re\u0000ason": "a\u0000b", "list": ["\u0000x"]},
        event_type="tok\u0000en_exchange",
    )
    worker = new_worker(ingest_settings(), engine, redis_client, clean_streams)
    async with running(worker):
        await redis_client.xadd(stream, fields)
        assert await wait_until(lambda: worker.stats.inserted >= 1, 3)
    (row,) = await stored(engine, zone)
    assert row["event_type"] == "token_exchange"
    assert row["metadata_json"] == {"reason": "ab", "list": ["x"]}
    assert await verify_chain(engine, zone, [KEY]) == 1


async def test_backlog_before_group_and_own_pending_list_are_ingested(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        await redis_client.xadd(stream, event_fields(zone))
    settings = ingest_settings()
    # The group is created at 0: the backlog is ingested too.
    worker = new_worker(settings, engine, redis_client, clean_streams, consumer="w-a")
    async with running(worker):
        assert await wait_until(lambda: worker.stats.inserted >= 3, 3)
    # Delivered to w-a but never processed (a crash): w-a's next start drains them first.
    for _ in range(2):
        await redis_client.xadd(stream, event_fields(zone))
    await redis_client.xreadgroup(GROUP, "w-a", {stream: ">"}, count=10)
    assert await pending_count(redis_client, stream) == 2
    again = new_worker(settings, engine, redis_client, clean_streams, consumer="w-a")
    async with running(again):
        assert await wait_until(lambda: again.stats.inserted >= 2, 3)
    assert await verify_chain(engine, zone, [KEY]) == 5
    assert await pending_count(redis_client, stream) == 0


async def test_database_down_messages_stay_pending_then_inserted_or_dead(
    events_dsn: str, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    name = events_dsn.rsplit("/", 1)[1]
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/{name}",
        connect_args={"timeout": 2},
        pool_size=2,
    )
    settings = ingest_settings(audit_ingest_claim_idle_sec=1, audit_ingest_max_deliveries=8)
    worker = new_worker(settings, engine, redis_client, clean_streams)
    try:
        async with running(worker):
            await proxy.cut()
            await redis_client.xadd(stream, event_fields(zone, request_id="survives"))
            # Re-claimed by XAUTOCLAIM after the idle time while the database is down.
            assert await wait_until(lambda: worker.stats.retried >= 3, 15)
            assert await pending_count(redis_client, stream) == 1
            await proxy.start()
            assert await wait_until(lambda: worker.stats.inserted >= 1, 10)
            assert await pending_count(redis_client, stream) == 0

            await proxy.cut()
            await redis_client.xadd(stream, event_fields(zone, request_id="gives-up"))
            assert await wait_until(lambda: worker.stats.dead_lettered >= 1, 25, 0.1)
    finally:
        await proxy.cut()
        await engine.dispose()
    (entry,) = await dlq_entries(redis_client, dlq)
    assert entry["reason"].startswith("transient_exceeded_max_deliveries:")
    assert await pending_count(redis_client, stream) == 0


async def test_two_workers_insert_each_message_once_without_chain_gaps(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    zones = [f"z-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    settings = ingest_settings()
    first = new_worker(settings, engine, redis_client, clean_streams, consumer="w-1")
    second = new_worker(settings, engine, redis_client, clean_streams, consumer="w-2")
    async with running(first), running(second):
        await asyncio.sleep(0.2)
        pipe = redis_client.pipeline(transaction=False)
        for i in range(300):
            pipe.xadd(stream, event_fields(zones[i % 3]))
        await pipe.execute()
        assert await wait_until(
            lambda: first.stats.inserted + second.stats.inserted >= 300, 20, 0.05
        )
    assert first.stats.inserted + second.stats.inserted == 300
    assert first.stats.inserted > 0
    assert second.stats.inserted > 0
    for zone in zones:
        assert await verify_chain(engine, zone, [KEY]) == 100


async def test_other_producer_rows_interleave_in_one_verifying_chain(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    """A second producer (as the platform's audit service) chains under the same lock."""
    stream, _dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"

    async def foreign_insert(n: int) -> None:
        occurred = datetime.now(UTC).replace(microsecond=123456)
        meta = json.dumps({"source": "foreign", "n": n, "ratio": 1e2})
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:z))"), {"z": zone})
            canon = (
                await conn.execute(text("SELECT CAST(CAST(:m AS jsonb) AS text)"), {"m": meta})
            ).scalar()
            head = (
                await conn.execute(
                    text(
                        "SELECT content_sha256, chain_seq FROM audit_events WHERE zone_id = :z"
                        " AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1"
                    ),
                    {"z": zone},
                )
            ).first()
            prev, seq = (head.content_sha256, head.chain_seq + 1) if head else ("", 1)
            event_id = f"foreign-{uuid.uuid4().hex}"
            delta = occurred - datetime(1970, 1, 1, tzinfo=UTC)
            nanos = ((delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds) * 1000
            parts = [
                event_id,
                zone,
                "gateway_request",
                "",
                "allow",
                "",
                "",
                "",
                "",
                "null",
                "null",
                canon,
            ]
            content = hashlib.sha256(
                ("".join(p + "\x1f" for p in parts) + str(nanos)).encode()
            ).hexdigest()
            await conn.execute(
                text(
                    "INSERT INTO audit_events (id, zone_id, event_type, decision, metadata_json,"
                    " occurred_at, content_sha256, prev_content_sha256, chain_hmac, chain_seq)"
                    " VALUES (:id, :z, 'gateway_request', 'allow', CAST(:m AS jsonb), :o, :c,"
                    " :p, :h, :s)"
                ),
                {
                    "id": event_id,
                    "z": zone,
                    "m": meta,
                    "o": occurred,
                    "c": content,
                    "p": prev or None,
                    "h": hmac.new(KEY, f"{content}|{prev}".encode(), hashlib.sha256).hexdigest(),
                    "s": seq,
                },
            )

    worker = new_worker(ingest_settings(), engine, redis_client, clean_streams)
    async with running(worker):
        for i in range(5):
            await redis_client.xadd(stream, event_fields(zone))
            await foreign_insert(i)
        assert await wait_until(lambda: worker.stats.inserted >= 5, 5)
    assert await verify_chain(engine, zone, [KEY]) == 10


async def test_previous_key_accepted_unknown_key_refused(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    settings = replace(ingest_settings(), audit_hmac_keys_previous=(OTHER_KEY, OLD_KEY))
    worker = new_worker(settings, engine, redis_client, clean_streams)
    async with running(worker):
        await redis_client.xadd(stream, event_fields(zone, key=OLD_KEY))
        await redis_client.xadd(stream, event_fields(zone, key=KEY))
        await redis_client.xadd(stream, event_fields(zone, key=bytes(32)))
        assert await wait_until(lambda: worker.stats.inserted + worker.stats.dead_lettered >= 3, 5)
    assert worker.stats.inserted == 2
    (entry,) = await dlq_entries(redis_client, dlq)
    assert entry["reason"] == "hmac_verify_failed"
    # Rows are chained under the current key only.
    assert await verify_chain(engine, zone, [KEY]) == 2


async def test_no_key_means_no_check(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    worker = new_worker(base_settings(), engine, redis_client, clean_streams)
    async with running(worker):
        await redis_client.xadd(stream, event_fields(zone, key=None))
        await redis_client.xadd(stream, event_fields(zone, key=OTHER_KEY))
        assert await wait_until(lambda: worker.stats.inserted >= 2, 3)
    rows = await stored(engine, zone)
    assert [r["chain_hmac"] for r in rows] == [None, None]
    assert rows[0]["ingest_signature"] is None
    assert rows[1]["ingest_signature"] is not None


async def test_reaper_removes_only_long_idle_consumers_without_pending(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis_client.xgroup_createconsumer(stream, GROUP, "gone")
    await redis_client.xadd(stream, {"data": "x"})
    await redis_client.xreadgroup(GROUP, "busy", {stream: ">"}, count=1)
    worker = new_worker(
        replace(ingest_settings(), audit_ingest_claim_idle_sec=3600),
        engine,
        redis_client,
        clean_streams,
        consumer="me",
    )
    await redis_client.xgroup_createconsumer(stream, GROUP, "me")
    worker.idle_consumer_ms = 300
    await asyncio.sleep(0.5)
    await redis_client.xgroup_createconsumer(stream, GROUP, "fresh")
    await worker.reap()
    names = {c["name"].decode() for c in await redis_client.xinfo_consumers(stream, GROUP)}
    assert names == {"busy", "fresh", "me"}
    assert worker.stats.consumers_removed == 1


async def _partitions(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        await conn.execute(text("SET TIME ZONE 'UTC'"))
        rows = (
            await conn.execute(
                text(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound"
                    " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'audit_events'::regclass"
                )
            )
        ).all()
    return {r.relname: r.bound for r in rows}


async def test_partition_upkeep(
    engine: AsyncEngine, events_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    windows = month_windows(datetime.now(UTC))
    async with engine.begin() as conn:
        await conn.execute(text("SET TIME ZONE 'America/New_York'"))
        for name, _lower, _upper in windows:
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    assert not set(await _partitions(engine)) & {w[0] for w in windows}

    # Two workers starting together create each partition once.
    other = create_async_engine(events_dsn.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        created_a, created_b = await asyncio.gather(
            ensure_partitions(engine), ensure_partitions(other)
        )
    finally:
        await other.dispose()
    assert sorted(created_a + created_b) == sorted(w[0] for w in windows)
    parts = await _partitions(engine)
    for name, lower, upper in windows:
        assert lower[:10] in parts[name]
        assert upper[:10] in parts[name]
        assert "00:00:00+00" in parts[name]
    assert await ensure_partitions(engine) == []

    # A month whose rows sit in the default partition is skipped with one error log.
    last_name, last_lower, _ = windows[-1]
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {last_name}"))
        await conn.execute(
            text(
                "INSERT INTO audit_events (id, zone_id, event_type, occurred_at)"
                " VALUES (:id, 'z-default', 'x',"
                " CAST(CAST(:o AS text) AS timestamptz) + interval '1 day')"
            ),
            {"id": f"stray-{uuid.uuid4().hex}", "o": last_lower},
        )
        await conn.execute(text(f"DROP TABLE {windows[0][0]}"))
    with caplog.at_level(logging.ERROR, logger="caracal_api.events.audit_ingest"):
        created = await ensure_partitions(engine)
    assert created == [windows[0][0]]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert messages == [
        f"audit_events partition {last_name} not created: "
        "audit_events_default holds rows of that month"
    ]
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_events_default WHERE zone_id = 'z-default'"))
    assert await ensure_partitions(engine) == [last_name]


async def test_ingest_on_the_in_process_stream_store(engine: AsyncEngine) -> None:
    """Embedded mode: XREADGROUP/XAUTOCLAIM/XINFO on fakeredis work the same way."""
    import fakeredis

    store = fakeredis.FakeAsyncRedis()
    zone = f"z-{uuid.uuid4().hex[:8]}"
    worker = AuditIngest(ingest_settings(), engine, store, upkeep=False)
    async with running(worker):
        await asyncio.sleep(0.1)
        await store.xadd("caracal.audit.events", event_fields(zone))
        await store.xadd("caracal.audit.events", {"id": "r"})
        assert await wait_until(lambda: worker.stats.inserted + worker.stats.dead_lettered >= 2, 6)
        assert await worker.reap() == 0
    assert len(await stored(engine, zone)) == 1
    (entry,) = await dlq_entries(store, "caracal.audit.events.dlq")
    assert entry["reason"] == "missing_data_field"
    await store.aclose()


async def test_group_is_recreated_when_the_stream_is_deleted(
    engine: AsyncEngine, redis_client: aioredis.Redis, clean_streams: tuple[str, str]
) -> None:
    stream, _dlq = clean_streams
    zone = f"z-{uuid.uuid4().hex[:8]}"
    worker = new_worker(ingest_settings(), engine, redis_client, clean_streams)
    async with running(worker):
        await asyncio.sleep(0.2)
        await redis_client.delete(stream)
        await redis_client.xadd(stream, event_fields(zone))
        assert await wait_until(lambda: worker.stats.inserted >= 1, 10, 0.05)
