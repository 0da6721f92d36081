"""The audit ingest worker (events.md §6).

Consumes `caracal.audit.events` in the consumer group `audit-ingestor` (shared with the
platform's own audit service), verifies `sig`, and stores each event once in
`audit_events`, chained per zone. Bad messages go to `caracal.audit.events.dlq`. A message
is acknowledged only after it was stored (or recognised as a duplicate) or after its DLQ copy
was written; anything else stays pending for the reaper (XAUTOCLAIM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from redis import exceptions as redis_exc
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from caracal_api import metrics
from caracal_api.config import Settings
from caracal_api.events import audit_chain
from caracal_api.events.audit_chain import AuditEvent, Reject
from caracal_api.events.audit_stream import AUDIT_DLQ_STREAM, AUDIT_STREAM
from caracal_api.kit.db import sqlstate, unavailable_error

log = logging.getLogger(__name__)

GROUP: Final = "audit-ingestor"
READ_COUNT: Final = 100
# Well below any Redis client socket timeout we configure (2–5 s), so an idle stream
# never reads as an outage.
READ_BLOCK_MS: Final = 1000
IDLE_CONSUMER_MS: Final = 3_600_000
UPKEEP_INTERVAL_SEC: Final = 86_400.0
PARTITION_LOCK: Final = "audit-events::partitions"
_TRANSIENT_SQLSTATES: Final = frozenset({"40001", "40P01", "53300", "57P01"})

_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:zone_id))")
_CANON_AND_HEAD = text(
    """
    SELECT CAST(CAST(:dp AS jsonb) AS text) AS dp,
           CAST(CAST(:diag AS jsonb) AS text) AS diag,
           CAST(CAST(:meta AS jsonb) AS text) AS meta,
           h.content_sha256 AS head_hash, h.chain_seq AS head_seq
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
      SELECT content_sha256, chain_seq FROM audit_events
      WHERE zone_id = :zone_id AND chain_seq IS NOT NULL
      ORDER BY chain_seq DESC LIMIT 1) AS h ON true
    """
)
_INSERT = text(
    """
    INSERT INTO audit_events (
      id, zone_id, event_type, request_id, decision, policy_set_id, policy_set_version_id,
      manifest_sha, evaluation_status, determining_policies_json, diagnostics_json,
      metadata_json, occurred_at, content_sha256, prev_content_sha256, chain_hmac, chain_seq,
      ingest_signature)
    VALUES (
      :id, :zone_id, :event_type, :request_id, :decision, :policy_set_id,
      :policy_set_version_id, :manifest_sha, :evaluation_status, CAST(:dp AS jsonb),
      CAST(:diag AS jsonb), CAST(:meta AS jsonb), :occurred_at, :content_sha256, :prev,
      :chain_hmac, :chain_seq, :sig)
    ON CONFLICT (id, occurred_at) DO NOTHING
    RETURNING id
    """
)
_STORED_HASH = text(
    "SELECT content_sha256 FROM audit_events WHERE id = :id AND occurred_at = :occurred_at"
)
_ALERT = text(
    """
    INSERT INTO audit_ingest_alerts (event_id, zone_id, kind, detail)
    VALUES (:event_id, :zone_id, 'content_mismatch_on_replay', :detail)
    """
)
# A catalog scan with the statement's snapshot, not to_regclass: a name lookup may answer
# from a stale negative cache entry right after another worker created the table.
_PARTITION_EXISTS = text(
    """
    SELECT EXISTS (
      SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = :name AND n.nspname = current_schema())
    """
)
_PARTITION_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_DEFAULT_HAS_ROWS = text(
    """
    SELECT 1 FROM audit_events_default
    WHERE occurred_at >= CAST(CAST(:lower AS text) AS timestamptz)
      AND occurred_at < CAST(CAST(:upper AS text) AS timestamptz)
    LIMIT 1
    """
)


class Outcome:
    INSERTED: Final = "inserted"
    DUPLICATE: Final = "duplicate"
    DEAD_LETTERED: Final = "dead_lettered"
    RETRIED: Final = "retried"


@dataclass
class IngestStats:
    inserted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    reaped: int = 0
    consumers_removed: int = 0
    partitions_created: int = 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value)


def _is_transient(exc: BaseException) -> bool:
    return sqlstate(exc) in _TRANSIENT_SQLSTATES or unavailable_error(exc) is not None


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    return message[:200]


def month_windows(now: datetime, months: int = 4) -> list[tuple[str, str, str]]:
    """(partition name, lower, upper) for the current UTC month and the next ones."""
    now = now.astimezone(UTC)
    year, month = now.year, now.month
    out: list[tuple[str, str, str]] = []
    for _ in range(months):
        nyear, nmonth = (year + 1, 1) if month == 12 else (year, month + 1)
        out.append(
            (
                f"audit_events_y{year:04d}m{month:02d}",
                f"{year:04d}-{month:02d}-01 00:00:00+00",
                f"{nyear:04d}-{nmonth:02d}-01 00:00:00+00",
            )
        )
        year, month = nyear, nmonth
    return out


class AuditIngest:
    """`run()` until `stop()`; any number of replicas (consumer name = WORKER_ID)."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        redis: Redis,
        *,
        consumer: str | None = None,
        upkeep: bool = True,
        stream: str = AUDIT_STREAM,
        dlq_stream: str = AUDIT_DLQ_STREAM,
    ) -> None:
        self.settings = settings
        self.consumer = consumer or settings.worker_id
        self.stream = stream
        self.dlq_stream = dlq_stream
        self.idle_consumer_ms = IDLE_CONSUMER_MS
        self._engine = engine
        self._redis = redis
        self._upkeep_enabled = upkeep
        self._key = settings.audit_hmac_key
        self._verify_keys: tuple[bytes, ...] = (
            (settings.audit_hmac_key, *settings.audit_hmac_keys_previous)
            if settings.audit_hmac_key is not None
            else ()
        )
        self._idle_ms = settings.audit_ingest_claim_idle_sec * 1000
        self._max_deliveries = settings.audit_ingest_max_deliveries
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._read_task: asyncio.Task[Any] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self.stats = IngestStats()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        self._run_task = asyncio.current_task()
        helpers: list[asyncio.Task[None]] = []
        try:
            if self._upkeep_enabled:
                helpers.append(asyncio.create_task(self._upkeep_loop(), name="audit-upkeep"))
            if not await self._ensure_group():
                return
            helpers.append(asyncio.create_task(self._reaper_loop(), name="audit-reaper"))
            await self._drain_own_pending()
            while not self._stopping.is_set():
                await self._read_once()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._stopped.set()

    async def stop(self, grace: float | None = None) -> bool:
        """Stop reading; the message being processed is finished. True when in time."""
        self._stopping.set()
        read = self._read_task
        if read is not None and not read.done():
            read.cancel()
        task = self._run_task
        if task is None or task.done():
            return True
        budget = self.settings.shutdown_grace_ms / 1000 if grace is None else grace
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped.wait()), timeout=budget)
            return True
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # -- consumption -----------------------------------------------------------------------

    async def _ensure_group(self) -> bool:
        while not self._stopping.is_set():
            try:
                await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
                return True
            except redis_exc.ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    return True
                log.error("audit ingest: cannot create consumer group", extra={"error": str(exc)})
            except Exception as exc:
                log.warning("audit ingest: redis unavailable", extra={"error": str(exc)})
            await self._sleep(1.0)
        return False

    async def _drain_own_pending(self) -> None:
        """Messages delivered to this consumer before a restart (XREADGROUP … 0)."""
        while not self._stopping.is_set():
            try:
                response = await self._redis.xreadgroup(
                    GROUP, self.consumer, {self.stream: "0"}, count=READ_COUNT
                )
            except Exception as exc:
                log.warning("audit ingest: redis read failed", extra={"error": str(exc)})
                await self._sleep(1.0)
                continue
            entries = _entries(response)
            live = [(i, f) for i, f in entries if f is not None]
            if not live:
                for entry_id, _ in entries:
                    await self._ack(entry_id)
                return
            for entry_id, fields in live:
                if self._stopping.is_set():
                    return
                await self.handle(entry_id, fields, await self._delivery_count(entry_id))

    async def _read_once(self) -> None:
        async def read() -> Any:
            return await self._redis.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=READ_COUNT, block=READ_BLOCK_MS
            )

        # A task of our own coroutine: stop() may cancel it before it ever ran.
        self._read_task = asyncio.ensure_future(read())
        try:
            response = await self._read_task
        except asyncio.CancelledError:
            if self._stopping.is_set():
                return
            raise
        except Exception as exc:
            log.warning("audit ingest: redis read failed", extra={"error": str(exc)})
            if "NOGROUP" in str(exc):
                # The stream (and its group) was deleted: recreate the group at 0.
                await self._ensure_group()
            await self._sleep(1.0)
            return
        finally:
            self._read_task = None
        for entry_id, fields in _entries(response):
            if self._stopping.is_set():
                return
            if fields is None:
                await self._ack(entry_id)
                continue
            await self.handle(entry_id, fields, 1)

    async def handle(self, entry_id: str, fields: Mapping[Any, Any], deliveries: int) -> str:
        """Process one message (§6.2); returns its outcome."""
        decoded = {_text(k) or "": v for k, v in fields.items()}
        try:
            event, data_sig = self._check(decoded)
        except Reject as exc:
            return await self._dead_letter(entry_id, fields, exc.reason)
        try:
            return await self._store(entry_id, fields, event, data_sig)
        except Exception as exc:
            if _is_transient(exc):
                if deliveries >= self._max_deliveries:
                    return await self._dead_letter(
                        entry_id, fields, f"transient_exceeded_max_deliveries:{_db_message(exc)}"
                    )
                self.stats.retried += 1
                metrics.AUDIT_INGEST_EVENTS.labels(outcome=Outcome.RETRIED).inc()
                log.warning(
                    "audit ingest: database unavailable, message left pending",
                    extra={"entry_id": entry_id, "error": _db_message(exc)},
                )
                return Outcome.RETRIED
            return await self._dead_letter(
                entry_id, fields, f"pg_permanent_error:{_db_message(exc)}"
            )

    def _check(self, fields: Mapping[str, Any]) -> tuple[AuditEvent, str | None]:
        raw = fields.get("data")
        data = _text(raw) if isinstance(raw, bytes | str) else None
        if data is None:
            raise Reject("missing_data_field")
        sig = _text(fields.get("sig"))
        if self._verify_keys and not audit_chain.verify_sig(sig, data, self._verify_keys):
            raise Reject("hmac_verify_failed")
        return audit_chain.parse_event(data), sig

    async def _store(
        self, entry_id: str, fields: Mapping[Any, Any], event: AuditEvent, sig: str | None
    ) -> str:
        dp = audit_chain.json_param(event.json_values["determining_policies_json"])
        diag = audit_chain.json_param(event.json_values["diagnostics_json"])
        meta = audit_chain.json_param(event.json_values["metadata_json"])
        mismatch: str | None = None
        async with self._engine.begin() as conn:
            await conn.execute(_LOCK, {"zone_id": event.zone_id})
            row = (
                await conn.execute(
                    _CANON_AND_HEAD,
                    {"dp": dp, "diag": diag, "meta": meta, "zone_id": event.zone_id},
                )
            ).one()
            canonical = {
                "determining_policies_json": row.dp,
                "diagnostics_json": row.diag,
                "metadata_json": row.meta,
            }
            content = audit_chain.content_sha256(event, canonical)
            prev = row.head_hash or ""
            seq = (int(row.head_seq) if row.head_seq is not None else 0) + 1
            inserted = (
                await conn.execute(
                    _INSERT,
                    {
                        "id": event.id,
                        "zone_id": event.zone_id,
                        "event_type": event.strings["event_type"] or "",
                        "request_id": event.strings["request_id"],
                        "decision": event.strings["decision"],
                        "policy_set_id": event.strings["policy_set_id"],
                        "policy_set_version_id": event.strings["policy_set_version_id"],
                        "manifest_sha": event.strings["manifest_sha"],
                        "evaluation_status": event.strings["evaluation_status"],
                        "dp": dp,
                        "diag": diag,
                        "meta": meta,
                        "occurred_at": event.occurred_at,
                        "content_sha256": content,
                        "prev": prev or None,
                        "chain_hmac": audit_chain.chain_hmac(self._key, content, prev),
                        "chain_seq": seq,
                        "sig": sig,
                    },
                )
            ).first()
            if inserted is None:
                stored = (
                    await conn.execute(
                        _STORED_HASH, {"id": event.id, "occurred_at": event.occurred_at}
                    )
                ).scalar()
                if stored != content:
                    mismatch = f"stored={stored} incoming={content}"
                    await conn.execute(
                        _ALERT,
                        {"event_id": event.id, "zone_id": event.zone_id, "detail": mismatch},
                    )
        if mismatch is not None:
            log.error(
                "audit ingest: content mismatch on replay",
                extra={"event_id": event.id, "zone_id": event.zone_id},
            )
            return await self._dead_letter(entry_id, fields, "tamper_on_replay")
        if inserted is None:
            self.stats.duplicates += 1
            metrics.AUDIT_INGEST_EVENTS.labels(outcome=Outcome.DUPLICATE).inc()
            await self._ack(entry_id)
            return Outcome.DUPLICATE
        self.stats.inserted += 1
        metrics.AUDIT_INGEST_EVENTS.labels(outcome=Outcome.INSERTED).inc()
        await self._ack(entry_id)
        return Outcome.INSERTED

    async def _dead_letter(self, entry_id: str, fields: Mapping[Any, Any], reason: str) -> str:
        dlq: dict[Any, Any] = {
            "reason": reason,
            "src_id": entry_id,
            "received_at": str(int(time.time() * 1000)),
        }
        for name, value in fields.items():
            label = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            # `src_id` names the stream entry; the original `id` field (the request id, also
            # inside `data`) would collide with it and is not copied.
            dlq.setdefault(f"src_{label}", value)
        try:
            await self._redis.xadd(self.dlq_stream, dlq)
        except Exception as exc:
            # Not acknowledged: the reaper retries the whole message later.
            log.error("audit ingest: DLQ write failed", extra={"error": str(exc)})
            return Outcome.RETRIED
        self.stats.dead_lettered += 1
        metrics.AUDIT_INGEST_EVENTS.labels(outcome=Outcome.DEAD_LETTERED).inc()
        metrics.AUDIT_INGEST_FAILURES.labels(reason=reason.split(":", 1)[0]).inc()
        log.warning(
            "audit ingest: message dead-lettered",
            extra={"entry_id": entry_id, "reason": reason.split(":", 1)[0]},
        )
        await self._ack(entry_id)
        return Outcome.DEAD_LETTERED

    async def _ack(self, entry_id: str) -> None:
        try:
            await self._redis.xack(self.stream, GROUP, entry_id)
        except Exception as exc:
            # Stays pending; a later delivery is recognised as a duplicate.
            log.warning("audit ingest: XACK failed", extra={"error": str(exc)})

    async def _delivery_count(self, entry_id: str) -> int:
        try:
            rows = await self._redis.xpending_range(
                self.stream, GROUP, min=entry_id, max=entry_id, count=1
            )
        except Exception:
            return 1
        return int(rows[0]["times_delivered"]) if rows else 1

    # -- reaper ----------------------------------------------------------------------------

    async def _reaper_loop(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(self.settings.audit_ingest_claim_idle_sec)
            if self._stopping.is_set():
                return
            try:
                await self.reap()
            except Exception as exc:
                log.warning("audit ingest: reaper pass failed", extra={"error": str(exc)})

    async def reap(self) -> int:
        """One XAUTOCLAIM pass plus removal of long-idle consumers; returns messages handled."""
        handled = 0
        cursor: Any = "0-0"
        while not self._stopping.is_set():
            reply = await self._redis.xautoclaim(
                self.stream, GROUP, self.consumer, self._idle_ms, start_id=cursor, count=100
            )
            cursor = reply[0]
            entries = [(_text(i) or "", f) for i, f in (reply[1] or [])]
            counts = await self._delivery_counts(entries)
            for entry_id, fields in entries:
                if self._stopping.is_set():
                    break
                if fields is None:
                    await self._ack(entry_id)
                    continue
                await self.handle(entry_id, fields, counts.get(entry_id, 1))
                handled += 1
            if _text(cursor) == "0-0":
                break
        self.stats.reaped += handled
        await self._remove_idle_consumers()
        return handled

    async def _delivery_counts(self, entries: list[tuple[str, Any]]) -> dict[str, int]:
        if not entries:
            return {}
        rows = await self._redis.xpending_range(
            self.stream,
            GROUP,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) + 100,
            consumername=self.consumer,
        )
        return {_text(r["message_id"]) or "": int(r["times_delivered"]) for r in rows}

    async def _remove_idle_consumers(self) -> None:
        consumers = await self._redis.xinfo_consumers(self.stream, GROUP)
        for info in consumers:
            name = _text(info.get("name"))
            if name is None or name == self.consumer:
                continue
            idle = int(info.get("idle", 0))
            if int(info.get("pending", 0)) == 0 and idle > self.idle_consumer_ms:
                await self._redis.xgroup_delconsumer(self.stream, GROUP, name)
                self.stats.consumers_removed += 1
                log.info("audit ingest: removed idle consumer", extra={"consumer": name})

    # -- partition upkeep ------------------------------------------------------------------

    async def _upkeep_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await ensure_partitions(self._engine, self.stats)
            except Exception:
                log.exception("audit_events partition upkeep failed")
            await self._sleep(UPKEEP_INTERVAL_SEC)


async def ensure_partitions(
    engine: AsyncEngine, stats: IngestStats | None = None, now: datetime | None = None
) -> list[str]:
    """Create the missing monthly partitions of the current month + 3 (§6.4).

    A month whose rows already sit in `audit_events_default` is skipped with an error log.
    Returns the names created by this call.
    """
    created: list[str] = []
    for name, lower, upper in month_windows(now or datetime.now(UTC)):
        async with engine.connect() as conn:
            exists = (await conn.execute(_PARTITION_EXISTS, {"name": name})).scalar()
        if exists:
            continue
        try:
            async with engine.begin() as conn:
                await conn.execute(_PARTITION_LOCK, {"key": PARTITION_LOCK})
                if (await conn.execute(_PARTITION_EXISTS, {"name": name})).scalar():
                    continue
                blocked = (
                    await conn.execute(_DEFAULT_HAS_ROWS, {"lower": lower, "upper": upper})
                ).first()
                if blocked is not None:
                    log.error(
                        f"audit_events partition {name} not created: "
                        "audit_events_default holds rows of that month"
                    )
                    continue
                # Names and bounds come from month_windows (digits only), never from input.
                await conn.execute(
                    text(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_events "
                        f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
                    )
                )
            created.append(name)
            if stats is not None:
                stats.partitions_created += 1
        except Exception:
            log.exception(f"audit_events partition {name} upkeep failed")
    return created


def _entries(response: Any) -> list[tuple[str, Any]]:
    """Flatten an XREADGROUP reply (list or RESP3 dict form) to (entry id, fields)."""
    out: list[tuple[str, Any]] = []
    if not response:
        return out
    streams = response.items() if isinstance(response, dict) else response
    for _stream, messages in streams:
        for entry_id, fields in messages or []:
            out.append((_text(entry_id) or "", fields))
    return out
