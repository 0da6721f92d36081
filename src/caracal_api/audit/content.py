"""Content hashes of admin-audit rows (foundation §13.4), canonical and legacy."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from caracal_api.kit.timefmt import format_ts

SEP = "\x1f"
HASHED_FIELDS = (
    "id",
    "request_id",
    "actor_id",
    "actor_name",
    "actor_scope",
    "action",
    "method",
    "path",
    "zone_id",
    "entity_type",
    "entity_id",
    "status_code",
    "payload_json",
    "occurred_at",
)
LEGACY_KEY_ORDER = (
    "rls_mode",
    "rls_zone_guc",
    "operator",
    "change_kind",
    "changed_fields",
    "secret_rotated",
    "dcr_registration_disabled",
    "dcr_shutdown_mode",
    "live_dcr_applications",
    "revoked_applications",
    "revoked_authority_records",
    "terminated_sessions",
    "revoked_delegations",
)


def strip_nul(value: Any) -> Any:
    """Remove U+0000 from every string, keys included, at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


def canonical_payload(payload: Any) -> str:
    if payload is None:
        return ""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _jsonb_key_order(key: str) -> tuple[int, bytes]:
    encoded = key.encode("utf-8")
    return len(encoded), encoded


def legacy_payload(payload: Any) -> str:
    if payload is None:
        return ""
    if not isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    known = [k for k in LEGACY_KEY_ORDER if k in payload]
    rest = sorted((k for k in payload if k not in LEGACY_KEY_ORDER), key=_jsonb_key_order)
    ordered = {k: payload[k] for k in known + rest}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def legacy_ts(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _digest(fields: dict[str, Any], payload_text: str, occurred_text: str) -> str:
    parts: list[str] = []
    for name in HASHED_FIELDS:
        if name == "payload_json":
            value = payload_text
        elif name == "occurred_at":
            value = occurred_text
        else:
            raw = fields.get(name)
            value = "" if raw is None else str(raw)
        parts.append(value.replace("\x00", "") + SEP)
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def content_sha256(fields: dict[str, Any]) -> str:
    """The canonical hash caracal-api writes; `fields` holds the row's values."""
    return _digest(
        fields, canonical_payload(fields.get("payload_json")), format_ts(fields["occurred_at"])
    )


def matches_content(fields: dict[str, Any], stored: str | None) -> bool:
    """Does `stored` equal the canonical or the legacy recomputation?"""
    if stored is None:
        return False
    payload = fields.get("payload_json")
    occurred = fields["occurred_at"]
    if hmac.compare_digest(
        _digest(fields, canonical_payload(payload), format_ts(occurred)), stored
    ):
        return True
    return hmac.compare_digest(
        _digest(fields, legacy_payload(payload), legacy_ts(occurred)), stored
    )


def chain_hmac(key: bytes, content: str, prev: str) -> str:
    return hmac.new(key, f"{content}|{prev}".encode(), hashlib.sha256).hexdigest()
