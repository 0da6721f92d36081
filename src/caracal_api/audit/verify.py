"""Recompute an admin-audit chain and report its first break (foundation §13.6)."""

from __future__ import annotations

import hmac
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from caracal_api.audit.content import chain_hmac, matches_content
from caracal_api.audit.records import GLOBAL_CHAIN

BATCH = 1000
HTTP_BUDGET = 100_000

_COLUMNS = (
    "id, request_id, actor_id, actor_name, actor_scope, action, method, path, zone_id,"
    " entity_type, entity_id, status_code, payload_json, occurred_at, content_sha256,"
    " prev_content_sha256, chain_hmac, chain_seq"
)


def _where(key: str) -> tuple[str, dict[str, Any]]:
    if key == GLOBAL_CHAIN:
        return "zone_id IS NULL", {}
    return "zone_id = :zone", {"zone": key}


def _hmac_ok(row: Any, prev: str, keys: list[bytes]) -> bool:
    content = row.content_sha256 or ""
    return any(hmac.compare_digest(chain_hmac(key, content, prev), row.chain_hmac) for key in keys)


async def verify_chain(
    engine: AsyncEngine,
    key: str,
    *,
    from_seq: int = 1,
    hmac_key: bytes | None,
    previous_keys: tuple[bytes, ...] = (),
    budget: int | None = None,
) -> dict[str, Any]:
    where, params = _where(key)
    keys = [hmac_key, *previous_keys] if hmac_key else []
    result: dict[str, Any] = {
        "zone_id": None if key == GLOBAL_CHAIN else key,
        "ok": True,
        "rows_checked": 0,
        "unchained_rows": 0,
        "unsigned_rows": 0,
        "head_seq": None,
        "first_break": None,
        "truncated": False,
        "next_from_seq": None,
    }
    async with engine.connect() as conn:
        stats = (
            await conn.execute(
                text(
                    f"SELECT count(*) FILTER (WHERE chain_seq IS NULL) AS unchained,"
                    f" max(chain_seq) AS head FROM admin_audit_events WHERE {where}"
                ),
                params,
            )
        ).one()
        result["unchained_rows"] = int(stats.unchained)
        result["head_seq"] = int(stats.head) if stats.head is not None else None
        prev: str | None = None
        if from_seq > 1:
            before = (
                await conn.execute(
                    text(
                        f"SELECT content_sha256 FROM admin_audit_events WHERE {where}"
                        " AND chain_seq = :seq"
                    ),
                    {**params, "seq": from_seq - 1},
                )
            ).first()
            prev = before.content_sha256 if before else None
        expected_seq = from_seq
        cursor = from_seq - 1
        while True:
            rows = (
                await conn.execute(
                    text(
                        f"SELECT {_COLUMNS} FROM admin_audit_events WHERE {where}"
                        " AND chain_seq > :after ORDER BY chain_seq LIMIT :batch"
                    ),
                    {**params, "after": cursor, "batch": BATCH},
                )
            ).all()
            if not rows:
                return result
            for row in rows:
                if budget is not None and result["rows_checked"] >= budget:
                    result["truncated"] = True
                    result["next_from_seq"] = int(row.chain_seq)
                    return result
                result["rows_checked"] += 1
                reason = _check(row, expected_seq, prev, keys, result)
                if reason is not None:
                    result["ok"] = False
                    result["first_break"] = {
                        "chain_seq": int(row.chain_seq),
                        "id": row.id,
                        "reason": reason,
                    }
                    return result
                prev = row.content_sha256
                expected_seq = int(row.chain_seq) + 1
                cursor = int(row.chain_seq)


def _check(
    row: Any, expected_seq: int, prev: str | None, keys: list[bytes], result: dict[str, Any]
) -> str | None:
    if int(row.chain_seq) != expected_seq:
        return "sequence_gap"
    if (row.prev_content_sha256 or None) != (prev or None):
        return "prev_link_mismatch"
    fields = {name: getattr(row, name) for name in row._fields}
    if not matches_content(fields, row.content_sha256):
        return "content_hash_mismatch"
    if keys:
        if row.chain_hmac is None:
            result["unsigned_rows"] += 1
        elif not _hmac_ok(row, prev or "", keys):
            return "hmac_mismatch"
    return None


async def chain_keys(engine: AsyncEngine) -> list[str]:
    """Every chain: each distinct zone plus the global chain."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT DISTINCT zone_id FROM admin_audit_events WHERE zone_id IS NOT NULL")
            )
        ).all()
    return [GLOBAL_CHAIN, *sorted(row.zone_id for row in rows)]
