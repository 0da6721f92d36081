"""Writing admin-audit rows: success records in the change's transaction, failures after."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from caracal_api.audit.content import content_sha256, strip_nul
from caracal_api.audit.summary import change_summary, entity_of, zone_of_path
from caracal_api.auth.actor import Actor
from caracal_api.kit import driver
from caracal_api.kit.ids import uuid7

log = logging.getLogger("caracal_api.audit")

GLOBAL_CHAIN = "admin-audit::global"

_COLUMNS = (
    "id", "request_id", "actor_id", "actor_name", "actor_scope", "action", "method", "path",
    "zone_id", "entity_type", "entity_id", "status_code", "payload_json", "occurred_at",
    "content_sha256",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO admin_audit_events ({', '.join(_COLUMNS)}) VALUES"
    f" ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))})"
)


@dataclass(frozen=True)
class RequestFacts:
    """What every record of one request shares."""

    request_id: str
    method: str
    path: str  # raw path, no query string
    actor: Actor | None


def chain_key(zone_id: str | None) -> str:
    return zone_id if zone_id is not None else GLOBAL_CHAIN


def rls_payload(actor: Actor | None) -> dict[str, Any]:
    if actor is not None and actor.scope == "zone":
        return {"rls_mode": "zone_scoped", "rls_zone_guc": actor.zone_id}
    return {"rls_mode": "control_plane_wildcard", "rls_zone_guc": "*"}


def build_record(
    facts: RequestFacts,
    *,
    status_code: int,
    occurred_at: datetime,
    payload: dict[str, Any] | None,
    response_body: Any = None,
    zone_id: str | None = None,
    action: str | None = None,
    entity: tuple[str | None, str | None] | None = None,
) -> dict[str, Any]:
    method = facts.method
    entity_type, entity_id = entity or entity_of(method, facts.path, status_code, response_body)
    if zone_id is None:
        zone_id = zone_of_path(facts.path)
    actor = facts.actor
    fields: dict[str, Any] = strip_nul(
        {
            "id": uuid7(),
            "request_id": facts.request_id,
            "actor_id": actor.id if actor else None,
            "actor_name": actor.name if actor else None,
            "actor_scope": actor.scope if actor else None,
            "action": action or f"{method} {facts.path}",
            "method": method,
            "path": facts.path,
            "zone_id": zone_id,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "status_code": status_code,
            "payload_json": payload,
        }
    )
    fields["occurred_at"] = occurred_at
    fields["content_sha256"] = content_sha256(fields)
    return fields


def success_payload(facts: RequestFacts, body: Any) -> dict[str, Any]:
    return {**rls_payload(facts.actor), **change_summary(facts.method, facts.path, body)}


async def insert(db: driver.Tx | AsyncConnection, record: dict[str, Any]) -> None:
    """Insert in `db`'s transaction, which `transaction_now` has begun (kit.driver)."""
    params = dict(record)
    payload = params["payload_json"]
    params["payload_json"] = None if payload is None else json.dumps(payload, ensure_ascii=False)
    await (await driver.raw(db)).execute(_INSERT, *(params[column] for column in _COLUMNS))


_NOW = text("SELECT now()")


async def transaction_now(db: driver.Tx | AsyncConnection) -> datetime:
    if isinstance(db, driver.DriverTx):
        now: datetime = await db.connection.fetchval("SELECT now()")
        return now
    return (await db.execute(_NOW)).scalar_one()
