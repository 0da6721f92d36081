"""events.md §6.2–§6.3: message checks, parsing, content hash (pure parts)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from caracal_api.events import audit_chain
from caracal_api.events.audit_chain import Reject

KEY = bytes(range(32))
PREV_KEY = bytes(range(32, 64))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123Z", datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        ("2026-01-02T03:04:05.1234567891Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T00:04:05-03:30", datetime(2026, 1, 2, 3, 34, 5, tzinfo=UTC)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    assert audit_chain.parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05",
        "2026-13-02T03:04:05Z",
        "2026-02-30T00:00:00Z",
        "yesterday",
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04:05+0200",
        "2026-01-02T03:04:05.Z",
        "",
    ],
)
def test_parse_rfc3339_rejects(text: str) -> None:
    assert audit_chain.parse_rfc3339(text) is None


def test_epoch_nanos() -> None:
    assert audit_chain.epoch_nanos(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert audit_chain.epoch_nanos(datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)) == (
        1767225600123456000
    )
    assert audit_chain.epoch_nanos(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1000


def test_verify_sig_current_previous_and_bad() -> None:
    data = '{"id":"e"}'
    good = hmac.new(KEY, data.encode(), hashlib.sha256).hexdigest()
    old = hmac.new(PREV_KEY, data.encode(), hashlib.sha256).hexdigest()
    assert audit_chain.verify_sig(good, data, [KEY, PREV_KEY])
    assert audit_chain.verify_sig(old, data, [KEY, PREV_KEY])
    assert audit_chain.verify_sig(good.upper(), data, [KEY])
    assert not audit_chain.verify_sig(old, data, [KEY])
    assert not audit_chain.verify_sig(None, data, [KEY])
    assert not audit_chain.verify_sig("zz" * 32, data, [KEY])
    assert not audit_chain.verify_sig(good[:-2], data, [KEY])


def _data(**over: object) -> str:
    base: dict[str, object] = {
        "id": "e1",
        "zone_id": "z1",
        "event_type": "token_exchange",
        "occurred_at": "2026-01-01T00:00:00.5Z",
    }
    base.update(over)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("not json", "json_parse_error:"),
        ("[1, 2]", "json_parse_error:data is not a JSON object"),
        (_data(id=...), "json_parse_error:missing or empty string id"),
        (_data(id=""), "json_parse_error:missing or empty string id"),
        (_data(zone_id=...), "json_parse_error:missing or empty string zone_id"),
        (_data(zone_id=5), "json_parse_error:missing or empty string zone_id"),
        (_data(occurred_at=...), "json_parse_error:missing or invalid occurred_at"),
        (_data(occurred_at="soon"), "json_parse_error:missing or invalid occurred_at"),
        (_data(event_type=5), "json_parse_error:event_type is not a string"),
        (_data(decision=["allow"]), "json_parse_error:decision is not a string"),
        (
            '{"id":"e","zone_id":"z","occurred_at":"2026-01-01T00:00:00Z","x":NaN}',
            "json_parse_error:",
        ),
    ],
)
def test_parse_event_rejects(data: str, reason: str) -> None:
    with pytest.raises(Reject) as info:
        audit_chain.parse_event(data)
    assert info.value.reason.startswith(reason)


def test_parse_event_strips_nul_and_tolerates_unknown_keys() -> None:
    data = json.dumps(
        {
            "id": "e\u00001",
            "zone_id": "z1",
            "occurred_at": "2026-01-01T00:00:00Z",
            "request_id": None,
            "unknown": {"x": 1},
            "metadata_json": {"k\u0000ey": ["a\u0000b", {"n": "\u0000"}]},
        }
    )
    event = audit_chain.parse_event(data)
    assert event.id == "e1"
    assert event.strings["request_id"] is None
    assert event.json_values["metadata_json"] == {"key": ["ab", {"n": ""}]}
    raw_nul = '{"id":"e2","zone_id":"z","occurred_at":"2026-01-01T00:00:00Z","reason":"a\x00b"}'
    assert audit_chain.parse_event(raw_nul).id == "e2"


def test_json_param_keeps_numbers_as_written() -> None:
    event = audit_chain.parse_event(
        _data(metadata_json={"a": 1, "b": [1.50, True, None]}).replace("1.5", "1.50")
    )
    assert audit_chain.json_param(event.json_values["metadata_json"]) == (
        '{"a":1,"b":[1.50,true,null]}'
    )
    assert audit_chain.json_param(None) is None


def test_content_sha256_layout() -> None:
    event = audit_chain.parse_event(
        _data(request_id="r1", decision="allow", evaluation_status="complete")
    )
    canonical = {
        "determining_policies_json": "[]",
        "diagnostics_json": None,
        "metadata_json": '{"a": 1}',
    }
    expected_text = (
        "\x1f".join(
            [
                "e1",
                "z1",
                "token_exchange",
                "r1",
                "allow",
                "",
                "",
                "",
                "complete",
                "[]",
                "null",
                '{"a": 1}',
                "",
            ]
        )
        + "1767225600500000000"
    )
    assert (
        audit_chain.content_sha256(event, canonical)
        == hashlib.sha256(expected_text.encode()).hexdigest()
    )


def test_chain_hmac() -> None:
    assert audit_chain.chain_hmac(None, "c", "p") is None
    assert audit_chain.chain_hmac(KEY, "c", "") == hmac.new(KEY, b"c|", hashlib.sha256).hexdigest()
