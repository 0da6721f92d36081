"""Links admin-audit rows into per-zone hash chains after commit (foundation §13.5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from caracal_api.audit.content import chain_hmac
from caracal_api.audit.records import GLOBAL_CHAIN
from caracal_api.kit.timefmt import utcnow
from caracal_api.metrics import ADMIN_AUDIT_CHAIN_LAG

log = logging.getLogger("caracal_api.audit.chainer")

BATCH = 500


def _zone_filter(key: str) -> str:
    # `IS NOT DISTINCT FROM` cannot use the indexes, so the global chain gets its own text.
    return "zone_id IS NULL" if key == GLOBAL_CHAIN else "zone_id = :zone"


async def chain_once(engine: AsyncEngine, key: str, hmac_key: bytes | None) -> int:
    """One short transaction chaining up to BATCH rows of one chain; returns how many."""
    where = _zone_filter(key)
    params = {} if key == GLOBAL_CHAIN else {"zone": key}
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        head = (
            await conn.execute(
                text(
                    f"SELECT chain_seq, content_sha256 FROM admin_audit_events WHERE {where}"
                    " AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1"
                ),
                params,
            )
        ).first()
        seq = head.chain_seq if head else 0
        prev = (head.content_sha256 or "") if head else ""
        rows = (
            await conn.execute(
                text(
                    f"SELECT id, content_sha256, occurred_at FROM admin_audit_events WHERE {where}"
                    " AND chain_seq IS NULL ORDER BY occurred_at, id LIMIT :batch FOR UPDATE"
                ),
                {**params, "batch": BATCH},
            )
        ).all()
        if not rows:
            return 0
        ids, seqs, prevs, hmacs = [], [], [], []
        now = utcnow()
        for row in rows:
            seq += 1
            content = row.content_sha256 or ""
            ids.append(row.id)
            seqs.append(seq)
            prevs.append(prev or None)
            hmacs.append(chain_hmac(hmac_key, content, prev) if hmac_key else None)
            prev = content
            ADMIN_AUDIT_CHAIN_LAG.observe(max(0.0, (now - row.occurred_at).total_seconds()))
        await conn.execute(
            text(
                "UPDATE admin_audit_events a SET chain_seq = t.seq,"
                " prev_content_sha256 = t.prev, chain_hmac = t.mac"
                " FROM unnest(CAST(:ids AS text[]), CAST(:seqs AS bigint[]),"
                " CAST(:prevs AS text[]), CAST(:macs AS text[])) AS t(id, seq, prev, mac)"
                " WHERE a.id = t.id AND a.chain_seq IS NULL"
            ),
            {"ids": ids, "seqs": seqs, "prevs": prevs, "macs": hmacs},
        )
        return len(rows)


async def chain(engine: AsyncEngine, key: str, hmac_key: bytes | None) -> int:
    """Chain every currently unchained row of one chain."""
    total = 0
    while True:
        done = await chain_once(engine, key, hmac_key)
        total += done
        if done < BATCH:
            return total


async def unchained_keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT DISTINCT zone_id FROM admin_audit_events WHERE chain_seq IS NULL")
            )
        ).all()
    return [row.zone_id if row.zone_id is not None else GLOBAL_CHAIN for row in rows]


CHAIN_DELAY_SEC = 0.02


class ChainScheduler:
    """Coalesces chain requests per key and runs them in the background."""

    def __init__(self, engine: AsyncEngine, hmac_key: bytes | None) -> None:
        self.engine = engine
        self.hmac_key = hmac_key
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def schedule(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key in self._running:
                self._again.add(key)
            else:
                self._running[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: str) -> None:
        try:
            # Let the response and the outbox dispatch of the change go first, and let the
            # records of a burst gather: chaining is not on any client's path.
            await asyncio.sleep(CHAIN_DELAY_SEC)
            while True:
                self._again.discard(key)
                try:
                    await chain(self.engine, key, self.hmac_key)
                except Exception as exc:
                    log.warning("chaining failed", extra={"chain": key, "error": repr(exc)})
                    return
                if key not in self._again:
                    return
        finally:
            self._running.pop(key, None)

    async def sweep(self) -> None:
        try:
            keys = await unchained_keys(self.engine)
        except Exception as exc:
            log.warning("chain sweep failed", extra={"error": repr(exc)})
            return
        self.schedule(keys)

    async def drain(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)
