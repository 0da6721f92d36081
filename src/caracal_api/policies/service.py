"""Policy business rules (policies.md §2, §4): validation, policies and their versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit import driver
from caracal_api.kit.call import via_operator
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.timefmt import format_ts, format_ts_or_none
from caracal_api.kit.uow import WriteContext
from caracal_api.policies import repository as repo
from caracal_api.policies.contract import sha256_hex
from caracal_api.policies.engine import FailureKind, RegoEngine, RegoFailure
from caracal_api.policies.errors import InvalidRego, PolicyNotFound
from caracal_api.policies.schemas import PolicyCreate
from caracal_api.policies.validation import (
    REQUIRED_PACKAGE,
    SCHEMA_VERSION,
    StaticResult,
    preview,
    validate_static,
)
from caracal_api.zones.service import require_zone

RESERVED_NAME_PREFIX = "caracal.sys/"
OUTPUT_CONTRACT: dict[str, Any] = {
    "package": REQUIRED_PACKAGE,
    "rule": "result",
    "decision": ["allow", "deny"],
    "evaluation_status": ["complete"],
}
_FAILURE_CODES = {
    FailureKind.COMPILE: "rego_compile_error",
    FailureKind.EVALUATION: "rego_evaluation_error",
    FailureKind.COMPILE_TIMEOUT: "rego_compile_timeout",
    FailureKind.EVALUATION_TIMEOUT: "rego_evaluation_timeout",
}


# --- validation (§2) -------------------------------------------------------------------------


def invalid_rego(failure: RegoFailure, *, validate: bool = False) -> InvalidRego:
    """422 `invalid_rego` for a compile-check failure, with its position details (§2.2)."""
    details = {
        "line": failure.line,
        "column": failure.column,
        "module": failure.module or "policy",
        "message": failure.message,
    }
    return InvalidRego(_FAILURE_CODES[failure.kind], details, with_valid_flag=validate)


async def check_content(
    engine: RegoEngine, content: str, *, validate: bool = False
) -> StaticResult:
    """Static validator then compile check; raises InvalidRego or RegoEngineBusy.

    Runs before any transaction: the engine call may wait up to REGO_TIMEOUT_MS twice.
    """
    static = validate_static(content)
    if not static.ok:
        assert static.code is not None
        raise InvalidRego(static.code, with_valid_flag=validate)
    failure = await engine.check_content(content, static)
    if failure is not None:
        raise invalid_rego(failure, validate=validate)
    return static


async def validate(engine: RegoEngine, content: str) -> dict[str, Any]:
    """PO1: the validate answer for content that passes §2."""
    static = await check_content(engine, content, validate=True)
    return {
        "valid": True,
        "schema_version": SCHEMA_VERSION,
        "input_schema_version": SCHEMA_VERSION,
        "output_contract": OUTPUT_CONTRACT,
        "preview": preview(content, static),
    }


# --- rows ----------------------------------------------------------------------------------


def policy_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "name": row.name,
        "description": row.description,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "updated_by": row.updated_by,
        "updated_via_operator": row.updated_via_operator,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
    }


def version_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "policy_id": row.policy_id,
        "version": row.version,
        "content": row.content,
        "content_sha256": row.content_sha256,
        "schema_version": row.schema_version,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "created_at": format_ts(row.created_at),
        "archived_at": format_ts_or_none(row.archived_at),
    }


def summary_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "policy_id": row.policy_id,
        "version": row.version,
        "content_sha256": row.content_sha256,
        "schema_version": row.schema_version,
        "created_at": format_ts(row.created_at),
    }


# --- reads ---------------------------------------------------------------------------------


async def list_policies(
    session: AsyncSession, zone_id: str, limit: int, cursor: Cursor | None
) -> tuple[list[dict[str, Any]], list[Row[Any]]]:
    rows = list(await repo.list_policies(session, zone_id, limit, cursor))
    return [policy_out(row) for row in rows], rows


async def get_policy(session: AsyncSession, zone_id: str, policy_id: str) -> dict[str, Any]:
    row = await repo.get_live(session, zone_id, policy_id)
    if row is None:
        raise PolicyNotFound()
    versions = await repo.list_versions(session, policy_id)
    return {**policy_out(row), "versions": [version_out(v) for v in versions]}


# --- writes --------------------------------------------------------------------------------


def _version_values(ctx: WriteContext, policy_id: str, content: str, via: bool) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "policy_id": policy_id,
        "content": content,
        "content_sha256": sha256_hex(content),
        "schema_version": SCHEMA_VERSION,
        "created_by": ctx.actor_label,
        "created_via_operator": via,
    }


async def create_policy(
    session: AsyncSession, ctx: WriteContext, zone_id: str, payload: PolicyCreate
) -> dict[str, Any]:
    """PO3 step 5: the policy and its version 1 (content already validated)."""
    await require_zone(await driver.raw(session), zone_id)
    via = await via_operator(session, ctx, zone_id)
    row = await repo.insert_policy(
        session,
        {
            "id": uuid7(),
            "zone_id": zone_id,
            "name": payload.name,
            "description": payload.description,
            "created_by": ctx.actor_label,
            "created_via_operator": via,
        },
    )
    version = await repo.insert_version(session, _version_values(ctx, row.id, payload.content, via))
    return {
        "id": row.id,
        "version_id": version.id,
        "zone_id": row.zone_id,
        "name": row.name,
        "description": row.description,
        "version": summary_out(version),
    }


async def add_version(
    session: AsyncSession, ctx: WriteContext, zone_id: str, policy_id: str, content: str
) -> dict[str, Any]:
    """PO5 step 3: the next version under the policy's advisory lock."""
    await repo.lock_policy(session, policy_id)
    if await repo.get_live(session, zone_id, policy_id) is None:
        raise PolicyNotFound()
    via = await via_operator(session, ctx, zone_id)
    version = await repo.insert_version(session, _version_values(ctx, policy_id, content, via))
    await repo.touch_policy(session, policy_id, ctx.actor_label, via)
    return {"version_id": version.id, **summary_out(version)}


async def delete_policy(
    session: AsyncSession, ctx: WriteContext, zone_id: str, policy_id: str
) -> None:
    via = await via_operator(session, ctx, zone_id)
    if not await repo.archive_policy(session, zone_id, policy_id, ctx.actor_label, via):
        raise PolicyNotFound()
