"""Pure parts of audit ingest (events.md §6.2–§6.3): message checks, parsing, hashing.

The content hash is the one the platform's audit service writes, so chains mixing both
producers verify end to end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

SEP: Final = "\x1f"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

STRING_FIELDS: Final = (
    "event_type",
    "request_id",
    "decision",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "evaluation_status",
)
JSON_FIELDS: Final = ("determining_policies_json", "diagnostics_json", "metadata_json")
# Hash order of the string fields (§6.3 step 4).
HASHED_STRINGS: Final = (
    "id",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "evaluation_status",
)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


class Reject(Exception):
    """A message that goes to the DLQ; `reason` is the DLQ reason text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class AuditEvent:
    id: str
    zone_id: str
    occurred_at: datetime
    strings: dict[str, str | None]
    json_values: dict[str, Any]


def parse_rfc3339(text: str) -> datetime | None:
    """RFC 3339 with `Z` or an offset and an optional fraction → UTC, truncated to µs."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    if m.group(8):
        tz: timezone = UTC
    else:
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            return None
        sign = 1 if m.group(9) == "+" else -1
        tz = timezone(sign * timedelta(hours=off_h, minutes=off_m))
    try:
        return datetime(year, month, day, hour, minute, second, int(frac), tzinfo=tz).astimezone(
            UTC
        )
    except (ValueError, OverflowError):
        return None


def epoch_nanos(value: datetime) -> int:
    """Nanoseconds since the Unix epoch (a multiple of 1000), exact integer arithmetic."""
    delta = value - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros * 1000


def strip_nul(value: Any) -> Any:
    """Remove U+0000 from every string, keys and values, at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def verify_sig(sig: str | None, data: str, keys: Iterable[bytes]) -> bool:
    """`sig` equals HMAC-SHA256(key, data) for one of `keys` (constant-time compares)."""
    if sig is None or _HEX.fullmatch(sig) is None:
        return False
    message = data.encode("utf-8")
    received = sig.lower()
    ok = False
    for key in keys:
        ok = hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest(), received) or ok
    return ok


def parse_event(data: str) -> AuditEvent:
    """Parse and check `data` (§6.2 step 3) and strip U+0000 (step 4); raises Reject."""
    try:
        # Decimal keeps numbers as written, so PostgreSQL canonicalises the same text the
        # producer sent (e.g. `1e2` → `100`), not a float's re-rendering.
        value = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant, strict=False)
    except (ValueError, RecursionError) as exc:
        raise Reject(f"json_parse_error:{_short(exc)}") from None
    if not isinstance(value, dict):
        raise Reject("json_parse_error:data is not a JSON object")
    event = strip_nul(value)
    ids: dict[str, str] = {}
    for name in ("id", "zone_id"):
        field = event.get(name)
        if not isinstance(field, str) or not field:
            raise Reject(f"json_parse_error:missing or empty string {name}")
        ids[name] = field
    occurred_raw = event.get("occurred_at")
    occurred = parse_rfc3339(occurred_raw) if isinstance(occurred_raw, str) else None
    if occurred is None:
        raise Reject("json_parse_error:missing or invalid occurred_at")
    strings: dict[str, str | None] = {}
    for name in STRING_FIELDS:
        field = event.get(name)
        if field is not None and not isinstance(field, str):
            raise Reject(f"json_parse_error:{name} is not a string")
        strings[name] = field
    json_values = {name: event.get(name) for name in JSON_FIELDS}
    return AuditEvent(ids["id"], ids["zone_id"], occurred, strings, json_values)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _encode_json(value: Any) -> str:
    """JSON text keeping Decimal numbers exactly as parsed."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{json.dumps(str(k), ensure_ascii=False)}:{_encode_json(v)}"
                for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_encode_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def json_param(value: Any) -> str | None:
    """Text bound for `CAST(:x AS jsonb)`: None for absent / JSON null."""
    return None if value is None else _encode_json(value)


def content_sha256(event: AuditEvent, canonical_json: Mapping[str, str | None]) -> str:
    """§6.3 step 4 over the parsed event and PostgreSQL's canonical JSON texts."""
    parts: list[str] = []
    for name in HASHED_STRINGS:
        if name == "id":
            value: str | None = event.id
        elif name == "zone_id":
            value = event.zone_id
        else:
            value = event.strings.get(name)
        parts.append((value or "") + SEP)
    for name in JSON_FIELDS:
        text = canonical_json.get(name)
        parts.append(("null" if text is None else text) + SEP)
    parts.append(str(epoch_nanos(event.occurred_at)))
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def chain_hmac(key: bytes | None, content: str, prev: str) -> str | None:
    if key is None:
        return None
    return hmac.new(key, f"{content}|{prev}".encode(), hashlib.sha256).hexdigest()
