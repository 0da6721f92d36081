"""Activation status (policies.md PS8): binding, outbox row and STS view of one version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.timefmt import format_ts_or_none
from caracal_api.policy_sets import repository as repo
from caracal_api.policy_sets.errors import (
    ActivePolicySetVersionNotFound,
    PolicySetBindingNotFound,
)
from caracal_api.policy_sets.sts import StsClient

_STS_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "zone_id": str,
    "policy_set_version_id": str,
    "manifest_sha256": str,
    "loaded_at": str,
    "age_seconds": (int, float),
}


def outbox_state(
    row: Row[Any] | None, outbox_id: str | None, zone_id: str, set_id: str, version_id: str
) -> dict[str, Any]:
    if row is None:
        return {
            "id": outbox_id,
            "state": "missing",
            "attempts": 0,
            "last_error": None,
            "dispatched_at": None,
        }
    if (
        row.stream_name != repo.INVALIDATE_STREAM
        or row.zone_id != zone_id
        or row.policy_set_id != set_id
        or row.policy_set_version_id != version_id
    ):
        state = "mismatch"
    elif row.dispatched_at is not None:
        state = "dispatched"
    elif row.dead:
        state = "dead"
    else:
        state = "pending"
    return {
        "id": row.id,
        "state": state,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "dispatched_at": format_ts_or_none(row.dispatched_at),
    }


async def sts_state(sts: StsClient | None, zone_id: str) -> dict[str, Any]:
    if sts is None:
        return {"state": "not_configured", "detail": "no STS is configured"}
    reply = await sts.status(zone_id)
    if reply.network_error is not None:
        return {"state": "unreachable", "detail": reply.network_error}
    try:
        data = reply.json()
    except ValueError as exc:
        return {
            "state": "failed",
            "detail": f"invalid STS response: not JSON ({type(exc).__name__})",
        }
    if not reply.ok:
        return {"state": "failed", "detail": reply.error_text()}
    if not isinstance(data, dict):
        return {"state": "failed", "detail": "invalid STS response: not a JSON object"}
    loaded = data.get("loaded") is True
    out: dict[str, Any] = {"state": "loaded" if loaded else "not_loaded", "loaded": loaded}
    for key, kind in _STS_OPTIONAL.items():
        value = data.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            out[key] = value
    return out


def propagation(active: bool, outbox: dict[str, Any], sts: dict[str, Any], target: str) -> str:
    if not active:
        return "waiting_for_activation"
    if outbox["state"] in ("dead", "mismatch"):
        return "failed"
    if outbox["state"] != "dispatched":
        return "waiting_for_outbox"
    if sts.get("loaded") is True and sts.get("policy_set_version_id") == target:
        return "loaded"
    if sts["state"] == "failed":
        return "failed"
    return "waiting_for_sts"


async def read_status(
    session: AsyncSession,
    zone_id: str,
    set_id: str,
    version_id: str | None,
    outbox_id: str | None,
) -> tuple[dict[str, Any], str]:
    """Steps 1–3 (database only); returns the partial answer and the target version."""
    binding = await repo.binding_status(session, zone_id, set_id)
    if binding is None:
        raise PolicySetBindingNotFound()
    target = version_id or binding.active_version_id
    if target is None:
        raise ActivePolicySetVersionNotFound()
    if outbox_id is not None:
        row = await repo.outbox_row(session, outbox_id)
    else:
        row = await repo.newest_invalidation(session, zone_id, set_id, target)
    return (
        {
            "zone_id": zone_id,
            "policy_set_id": set_id,
            "version_id": target,
            "active": binding.active_version_id == target,
            "active_version_id": binding.active_version_id,
            "manifest_sha256": binding.manifest_sha256,
            "outbox": outbox_state(row, outbox_id, zone_id, set_id, target),
        },
        target,
    )


async def activation_status(
    partial: dict[str, Any], target: str, sts: StsClient | None
) -> dict[str, Any]:
    """Steps 4–7: the STS view (outside any transaction) and the propagation verdict."""
    sts_view = await sts_state(sts, partial["zone_id"])
    return {
        "zone_id": partial["zone_id"],
        "policy_set_id": partial["policy_set_id"],
        "version_id": target,
        "active": partial["active"],
        "active_version_id": partial["active_version_id"],
        "manifest_sha256": partial["manifest_sha256"],
        "propagation_status": propagation(partial["active"], partial["outbox"], sts_view, target),
        "outbox": partial["outbox"],
        "sts": sts_view,
    }
