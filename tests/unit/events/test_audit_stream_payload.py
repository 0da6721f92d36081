"""events.md §5: the `caracal.audit.events` outbox payload."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from caracal_api.events import audit_stream, outbox

KEY = bytes(range(32))


def test_data_key_order_compact_and_sig() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    payload = audit_stream.build_audit_payload(
        zone_id="z1",
        event_type="credential_revealed",
        request_id="req-1",
        decision="allow",
        metadata={"credential": "application_client_secret", "application_name": "Café"},
        key=KEY,
        occurred_at=when,
        event_id="ev-1",
    )
    assert list(payload) == ["id", "data", "sig"]
    assert payload["id"] == "req-1"
    data = payload["data"]
    assert isinstance(data, str)
    assert data == (
        '{"id":"ev-1","zone_id":"z1","event_type":"credential_revealed","request_id":"req-1",'
        '"decision":"allow","evaluation_status":"complete","determining_policies_json":[],'
        '"diagnostics_json":[],"metadata_json":{"credential":"application_client_secret",'
        '"application_name":"Café"},"occurred_at":"2026-01-02T03:04:05.123456Z"}'
    )
    assert payload["sig"] == hmac.new(KEY, data.encode(), hashlib.sha256).hexdigest()
    outbox.validate_payload(payload)


def test_no_key_no_sig_and_fresh_event_id() -> None:
    a = audit_stream.build_audit_payload(
        zone_id="z", event_type="t", request_id="r", decision="allow", metadata={}, key=None
    )
    b = audit_stream.build_audit_payload(
        zone_id="z", event_type="t", request_id="r", decision="allow", metadata={}, key=None
    )
    assert "sig" not in a
    assert isinstance(a["data"], str)
    assert isinstance(b["data"], str)
    assert json.loads(a["data"])["id"] != json.loads(b["data"])["id"]
    assert json.loads(a["data"])["occurred_at"].endswith("Z")
