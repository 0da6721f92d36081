"""Row shapes of the zone-event reads (events.md E1–E6): pure functions over fetched rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from caracal_api.kit.redaction import redact
from caracal_api.kit.timefmt import format_ts_or_none

# --- E1/E2/E3: decision audit --------------------------------------------------------------

AUDIT_METADATA_EXPORT_FIELDS: Final = (
    "application_id",
    "application_name",
    "resource",
    "requested_scopes",
    "agent_session_id",
    "agent_lifecycle",
    "agent_labels",
    "delegation_edge_id",
    "delegation_hop_count",
    "method",
    "latency_ms",
    "upstream_status",
    "result_class",
    "reason",
    "trace_id",
    "provider_id",
    "connection_id",
    "upstream_host",
    "gateway_status",
    "error_kind",
    "response_bytes",
    "auth_mode",
    "subject_fingerprint",
    "subject",
    "authorized_by",
    "command",
    "subcommand",
    "challenge_id",
    "tier",
    "approver_class",
    "privacy_mode",
    "approver_subject_id",
)

AUDIT_EXPORT_FIELDS: Final = (
    "id",
    "occurred_at",
    "event_type",
    "decision",
    "evaluation_status",
    "request_id",
    "ingested_at",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "determining_policies",
    *AUDIT_METADATA_EXPORT_FIELDS,
)

AUDIT_COLUMNS: Final = (
    "id",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "evaluation_status",
    "determining_policies_json",
    "diagnostics_json",
    "metadata_json",
    "occurred_at",
    "ingested_at",
)


def audit_item(row: Mapping[Any, Any]) -> dict[str, Any]:
    """E1/E2 item: the stored row with metadata redacted and timestamps formatted."""
    item = {name: row.get(name) for name in AUDIT_COLUMNS}
    item["metadata_json"] = redact(row.get("metadata_json"))
    item["occurred_at"] = format_ts_or_none(row.get("occurred_at"))
    item["ingested_at"] = format_ts_or_none(row.get("ingested_at"))
    return item


def policy_names(determining_policies: Any) -> list[str]:
    """The `policy` strings of the `determining_policies_json` entries."""
    if not isinstance(determining_policies, list):
        return []
    return [
        entry["policy"]
        for entry in determining_policies
        if isinstance(entry, dict) and isinstance(entry.get("policy"), str)
    ]


def audit_export_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """Every E1 export field of an item built by `audit_item` (metadata already redacted)."""
    metadata = item.get("metadata_json")
    meta = metadata if isinstance(metadata, dict) else {}
    out: dict[str, Any] = {
        "id": item.get("id"),
        "occurred_at": item.get("occurred_at"),
        "event_type": item.get("event_type"),
        "decision": item.get("decision"),
        "evaluation_status": item.get("evaluation_status"),
        "request_id": item.get("request_id"),
        "ingested_at": item.get("ingested_at"),
        "policy_set_id": item.get("policy_set_id"),
        "policy_set_version_id": item.get("policy_set_version_id"),
        "manifest_sha": item.get("manifest_sha"),
        "determining_policies": policy_names(item.get("determining_policies_json")),
    }
    for name in AUDIT_METADATA_EXPORT_FIELDS:
        out[name] = meta.get(name)
    return out


POLICY_INPUT_SCHEMA_VERSION: Final = "2026-05-20"


def _str(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


def policy_input(zone_id: str, metadata: Any) -> dict[str, Any]:
    """E3 `policy_input`, rebuilt from the unredacted metadata of a deny event."""
    meta: Mapping[str, Any] = metadata if isinstance(metadata, dict) else {}
    scopes = meta.get("requested_scopes")
    scopes = scopes if isinstance(scopes, list) else []
    principal: dict[str, Any] = {
        "type": "Application",
        "id": _str(meta, "application_id") or "",
        "zone_id": zone_id,
    }
    for out_key, meta_key in (
        ("registration_method", "application_registration_method"),
        ("agent_session_id", "agent_session_id"),
        ("lifecycle", "agent_lifecycle"),
    ):
        value = _str(meta, meta_key)
        if value is not None:
            principal[out_key] = value
    labels = meta.get("agent_labels")
    if isinstance(labels, list):
        principal["labels"] = labels
    context: dict[str, Any] = {
        "actor_claims": {},
        "requested_scopes": scopes,
        "challenge_resolved": False,
    }
    for key in ("session_id", "agent_session_id", "delegation_edge_id"):
        value = _str(meta, key)
        if value is not None:
            context[key] = value
    result: dict[str, Any] = {
        "schema_version": POLICY_INPUT_SCHEMA_VERSION,
        "principal": principal,
        "resource": {
            "type": "Resource",
            "identifier": _str(meta, "resource") or "",
            "scopes": scopes,
        },
        "action": {"id": "TokenExchange"},
        "context": context,
    }
    session_id = _str(meta, "session_id")
    if session_id is not None:
        result["session"] = {"id": session_id}
    edge_id = _str(meta, "delegation_edge_id")
    if edge_id is not None:
        result["delegation_edge"] = {"id": edge_id}
    return result


def explain(request_id: str, zone_id: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """E3 body from the request's events in `occurred_at ASC, id ASC` order (unredacted)."""
    denied = []
    for row in rows:
        if row.get("decision") != "deny":
            continue
        metadata = row.get("metadata_json")
        denied.append(
            {
                "event_id": row.get("id"),
                "event_type": row.get("event_type"),
                "evaluation_status": row.get("evaluation_status"),
                "determining_policies": row.get("determining_policies_json") or [],
                "diagnostics": row.get("diagnostics_json") or [],
                "metadata": redact(metadata) if metadata is not None else {},
                "policy_input": policy_input(zone_id, metadata),
            }
        )
    if denied:
        final = "deny"
    else:
        last = rows[-1].get("decision") if rows else None
        final = last if isinstance(last, str) and last else "unknown"
    return {
        "request_id": request_id,
        "zone_id": zone_id,
        "final_decision": final,
        "denied": denied,
        "events": [audit_item(row) for row in rows],
    }


# --- E4/E7: admin audit --------------------------------------------------------------------

ADMIN_AUDIT_EXPORT_FIELDS: Final = (
    "id",
    "occurred_at",
    "action",
    "method",
    "path",
    "entity_type",
    "entity_id",
    "status_code",
    "actor_id",
    "actor_name",
    "actor_scope",
    "request_id",
    "chain_seq",
    "signed",
    "change_kind",
    "changed_fields",
)


def admin_audit_item(row: Mapping[Any, Any]) -> dict[str, Any]:
    """E4/E7 item; `signed` = chain_hmac present; `chain_seq` a JSON integer or null."""
    seq = row.get("chain_seq")
    return {
        "id": row.get("id"),
        "request_id": row.get("request_id"),
        "actor_id": row.get("actor_id"),
        "actor_name": row.get("actor_name"),
        "actor_scope": row.get("actor_scope"),
        "action": row.get("action"),
        "method": row.get("method"),
        "path": row.get("path"),
        "entity_type": row.get("entity_type"),
        "entity_id": row.get("entity_id"),
        "status_code": row.get("status_code"),
        "payload_json": redact(row.get("payload_json")),
        "occurred_at": format_ts_or_none(row.get("occurred_at")),
        "chain_seq": int(seq) if seq is not None else None,
        "signed": row.get("chain_hmac") is not None,
    }


def admin_audit_export_row(item: Mapping[str, Any]) -> dict[str, Any]:
    payload = item.get("payload_json")
    summary = payload if isinstance(payload, dict) else {}
    out = {name: item.get(name) for name in ADMIN_AUDIT_EXPORT_FIELDS[:14]}
    out["change_kind"] = summary.get("change_kind")
    out["changed_fields"] = summary.get("changed_fields")
    return out


# --- E5: authority records -----------------------------------------------------------------

AUTHORITY_RECORD_COLUMNS: Final = (
    "authority_record_id",
    "authority_record_type",
    "subject_id",
    "parent_authority_record_id",
    "status",
    "authenticated_at",
    "created_at",
    "expires_at",
    "revoked_at",
    "revoked_reason",
)


def authority_record_item(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "authority_record_id": row.get("id"),
        "authority_record_type": row.get("session_type"),
        "subject_id": row.get("subject_id"),
        "parent_authority_record_id": row.get("parent_id"),
        "status": row.get("status"),
        "authenticated_at": format_ts_or_none(row.get("authenticated_at")),
        "created_at": format_ts_or_none(row.get("created_at")),
        "expires_at": format_ts_or_none(row.get("expires_at")),
        "revoked_at": format_ts_or_none(row.get("revoked_at")),
        "revoked_reason": row.get("revoked_reason"),
        "zone_id": row.get("zone_id"),
    }


# --- E6: sessions --------------------------------------------------------------------------

SESSION_COLUMNS: Final = (
    "session_id",
    "application_id",
    "parent_session_id",
    "status",
    "lifecycle",
    "labels",
    "depth",
    "child_count",
    "started_at",
    "last_active_at",
    "terminated_at",
    "termination_reason",
    "ttl_seconds",
)


def session_item(row: Mapping[Any, Any]) -> dict[str, Any]:
    labels = row.get("labels")
    return {
        "session_id": row.get("id"),
        "application_id": row.get("application_id"),
        "parent_session_id": row.get("parent_id"),
        "status": row.get("status"),
        "lifecycle": row.get("lifecycle"),
        "labels": list(labels) if labels is not None else [],
        "depth": row.get("depth"),
        "child_count": row.get("child_count"),
        "started_at": format_ts_or_none(row.get("started_at")),
        "last_active_at": format_ts_or_none(row.get("last_active_at")),
        "terminated_at": format_ts_or_none(row.get("terminated_at")),
        "termination_reason": row.get("termination_reason"),
        "ttl_seconds": row.get("ttl_seconds"),
    }
