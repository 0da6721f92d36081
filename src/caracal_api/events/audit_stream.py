"""Audit-stream events produced by caracal-api (events.md §5).

The outbox payload for `caracal.audit.events` is `{id: <request id>, data: <event JSON
text>, sig?: <hex>}`. `data` is compact JSON with a fixed key order; `sig` is
HMAC-SHA256(AUDIT_HMAC_KEY, UTF-8 of `data`), computed once here over the exact string stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.events import outbox
from caracal_api.kit.ids import uuid7
from caracal_api.kit.timefmt import format_ts, utcnow

AUDIT_STREAM: Final = "caracal.audit.events"
AUDIT_DLQ_STREAM: Final = "caracal.audit.events.dlq"


def audit_sig(key: bytes, data: str) -> str:
    """Lower-case hex HMAC-SHA256 over the UTF-8 bytes of `data`."""
    return hmac.new(key, data.encode("utf-8"), hashlib.sha256).hexdigest()


def build_event_data(
    *,
    event_id: str,
    zone_id: str,
    event_type: str,
    request_id: str | None,
    decision: str,
    metadata: Mapping[str, Any],
    occurred_at: datetime,
) -> str:
    """The `data` JSON text, keys in the order events.md §5 fixes."""
    event: dict[str, Any] = {
        "id": event_id,
        "zone_id": zone_id,
        "event_type": event_type,
        "request_id": request_id,
        "decision": decision,
        "evaluation_status": "complete",
        "determining_policies_json": [],
        "diagnostics_json": [],
        "metadata_json": dict(metadata),
        "occurred_at": format_ts(occurred_at),
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def build_audit_payload(
    *,
    zone_id: str,
    event_type: str,
    request_id: str | None,
    decision: str,
    metadata: Mapping[str, Any],
    key: bytes | None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, str | int | bool | None]:
    """The outbox payload `{id, data, sig?}` of one audit-stream event (pure)."""
    data = build_event_data(
        event_id=event_id or uuid7(),
        zone_id=zone_id,
        event_type=event_type,
        request_id=request_id,
        decision=decision,
        metadata=metadata,
        occurred_at=occurred_at or utcnow(),
    )
    payload: dict[str, str | int | bool | None] = {"id": request_id, "data": data}
    if key is not None:
        payload["sig"] = audit_sig(key, data)
    return payload


async def enqueue_audit_event(
    session: AsyncSession,
    *,
    zone_id: str,
    event_type: str,
    request_id: str | None,
    decision: str,
    metadata: Mapping[str, Any],
    key: bytes | None,
    occurred_at: datetime | None = None,
) -> str:
    """Record one `caracal.audit.events` outbox row in the session's transaction.

    `key` is the current AUDIT_HMAC_KEY (never a previous one). Returns the outbox id.
    Secrets must never be passed in `metadata`.
    """
    payload = build_audit_payload(
        zone_id=zone_id,
        event_type=event_type,
        request_id=request_id,
        decision=decision,
        metadata=metadata,
        key=key,
        occurred_at=occurred_at,
    )
    return await outbox.record(session, AUDIT_STREAM, payload, request_id=request_id)
