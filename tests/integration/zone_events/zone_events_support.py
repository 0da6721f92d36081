"""Seeding helpers for the zone-event read tests (rows other Caracal components write)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api
from tests.integration.foundation.support import execute


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def seed_event(api: Api, zone_id: str, **columns: Any) -> dict[str, Any]:
    """An `audit_events` row as the ingest worker would store it."""
    values: dict[str, Any] = {
        "id": new_id("ev"),
        "zone_id": zone_id,
        "event_type": "token_exchange",
        "request_id": new_id("req"),
        "decision": "allow",
        "evaluation_status": "complete",
        "determining_policies_json": None,
        "diagnostics_json": None,
        "metadata_json": {},
        "occurred_at": datetime.now(UTC),
    }
    values.update(columns)
    params = dict(values)
    for name in ("determining_policies_json", "diagnostics_json", "metadata_json"):
        params[name] = None if values[name] is None else json.dumps(values[name])
    await execute(
        api,
        "INSERT INTO audit_events (id, zone_id, event_type, request_id, decision,"
        " evaluation_status, determining_policies_json, diagnostics_json, metadata_json,"
        " occurred_at) VALUES (:id, :zone_id, :event_type, :request_id, :decision,"
        " :evaluation_status, CAST(:determining_policies_json AS jsonb),"
        " CAST(:diagnostics_json AS jsonb), CAST(:metadata_json AS jsonb), :occurred_at)",
        **params,
    )
    return values


async def seed_application(api: Api, zone_id: str) -> str:
    app_id = new_id("app")
    await execute(
        api,
        "INSERT INTO applications (id, zone_id, name, registration_method)"
        " VALUES (:id, :z, :n, 'managed')",
        id=app_id,
        z=zone_id,
        n=new_id("seeded app"),
    )
    return app_id


async def seed_authority_record(api: Api, zone_id: str, **columns: Any) -> str:
    values: dict[str, Any] = {
        "id": new_id("ar"),
        "zone_id": zone_id,
        "session_type": "application",
        "subject_id": new_id("subject"),
        "status": "active",
        "created_at": datetime.now(UTC),
    }
    values.update(columns)
    names = list(values)
    await execute(
        api,
        f"INSERT INTO authority_records ({', '.join(names)}, expires_at, authenticated_at)"
        f" VALUES ({', '.join(':' + n for n in names)}, now() + interval '1 hour', now())",
        **values,
    )
    return str(values["id"])


async def seed_session(
    api: Api, zone_id: str, application_id: str, authority_record_id: str, **columns: Any
) -> str:
    values: dict[str, Any] = {
        "id": new_id("sess"),
        "zone_id": zone_id,
        "application_id": application_id,
        "subject_authority_record_id": authority_record_id,
        "labels": [],
        "started_at": datetime.now(UTC),
    }
    values.update(columns)
    names = list(values)
    await execute(
        api,
        f"INSERT INTO sessions ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})",
        **values,
    )
    return str(values["id"])


def at(seconds_ago: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds_ago)
