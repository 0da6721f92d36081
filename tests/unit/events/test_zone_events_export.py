"""events.md §9.1: CSV cells, redaction, `fields` projection; E1/E3 shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from caracal_api.kit.redaction import redact
from caracal_api.zone_events import export, shapes


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (1.5, "1.5"),
        (1e20, "100000000000000000000"),
        ("plain", "plain"),
        (["a", "b", "c"], "a b c"),
        ([], ""),
        ({"k": "v", "n": 1}, '"{""k"":""v"",""n"":1}"'),
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", '"\'\rx"'),
        ("a,b", '"a,b"'),
        ('say "hi"', '"say ""hi"""'),
        ("line1\nline2", '"line1\nline2"'),
        ("=a,b", '"\'=a,b"'),
        ("é", "é"),
    ],
)
def test_cells(value: object, cell: str) -> None:
    assert export.escape_cell(export.cell_text(value)) == cell


def test_timestamp_cells_use_wire_format() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert export.cell_text(when) == "2026-01-02T01:04:05.000006Z"


def test_render_csv_crlf_and_header() -> None:
    text = export.render_csv(
        ["id", "event_type", "decision"],
        [
            {"id": "1", "event_type": "x,y", "decision": "deny", "extra": "ignored"},
            {"id": "2", "event_type": None, "decision": "=cmd"},
        ],
    )
    assert text == 'id,event_type,decision\r\n1,"x,y",deny\r\n2,,\'=cmd\r\n'
    assert export.render_csv(["a"], []) == "a\r\n"


def test_parse_fields() -> None:
    allowed = ["id", "method", "entity_type"]
    assert export.parse_fields(" id , method,,entity_type ,id", allowed) == [
        "id",
        "method",
        "entity_type",
    ]
    for bad in (",,", "", " ", "id,secret_sauce", "payload_json", "x" * 1001):
        with pytest.raises(export.FieldsError):
            export.parse_fields(bad, allowed)


def test_project_keeps_given_order() -> None:
    row = {"id": 1, "method": "POST", "entity_type": "zones"}
    assert list(export.project(row, ["entity_type", "id"])) == ["entity_type", "id"]


def test_redaction_recursive_case_insensitive() -> None:
    value = {
        "token": "t",
        "Session_ID": "s",
        "nested": {"client_secret": "c", "keep": 1, "list": [{"Password": "p"}, "x"]},
        "set_cookie": {"a": 1},
        "session": ["a"],
        "safe": "ok",
    }
    assert redact(value) == {
        "token": "[redacted]",
        "Session_ID": "[redacted]",
        "nested": {
            "client_secret": "[redacted]",
            "keep": 1,
            "list": [{"Password": "[redacted]"}, "x"],
        },
        "set_cookie": "[redacted]",
        "session": "[redacted]",
        "safe": "ok",
    }
    assert redact(None) is None
    assert redact([{"apikey": 1}]) == [{"apikey": "[redacted]"}]


def _row(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "e1",
        "zone_id": "z1",
        "event_type": "token_exchange",
        "request_id": "r1",
        "decision": "deny",
        "policy_set_id": None,
        "policy_set_version_id": None,
        "manifest_sha": None,
        "evaluation_status": "complete",
        "determining_policies_json": [{"policy": "p1"}, {"policy": 5}, "x", {"policy": "p2"}],
        "diagnostics_json": None,
        "metadata_json": {
            "application_id": "app1",
            "session_id": "sess-raw",
            "agent_labels": ["a", "b"],
            "requested_scopes": ["read"],
            "resource": "https://r",
            "token": "secret",
        },
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
        "ingested_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
    }
    base.update(over)
    return base


def test_audit_item_and_export_row() -> None:
    item = shapes.audit_item(_row())
    assert list(item) == list(shapes.AUDIT_COLUMNS)
    assert item["metadata_json"]["session_id"] == "[redacted]"
    assert item["metadata_json"]["token"] == "[redacted]"
    assert item["occurred_at"] == "2026-01-01T00:00:00.000000Z"
    row = shapes.audit_export_row(item)
    assert list(row) == list(shapes.AUDIT_EXPORT_FIELDS)
    assert row["determining_policies"] == ["p1", "p2"]
    assert row["agent_labels"] == ["a", "b"]
    assert row["tier"] is None
    csv_text = export.render_csv(["determining_policies", "agent_labels"], [row])
    assert csv_text == "determining_policies,agent_labels\r\np1 p2,a b\r\n"


def test_explain_rebuilds_policy_input_from_raw_metadata() -> None:
    rows = [_row(id="e0", decision="allow"), _row()]
    body = shapes.explain("r1", "z1", rows)
    assert body["final_decision"] == "deny"
    assert len(body["denied"]) == 1
    denied = body["denied"][0]
    assert denied["metadata"]["session_id"] == "[redacted]"
    assert denied["diagnostics"] == []
    pi = denied["policy_input"]
    assert pi["session"] == {"id": "sess-raw"}
    assert pi["context"]["session_id"] == "sess-raw"
    assert pi["principal"] == {
        "type": "Application",
        "id": "app1",
        "zone_id": "z1",
        "labels": ["a", "b"],
    }
    assert pi["resource"] == {"type": "Resource", "identifier": "https://r", "scopes": ["read"]}
    assert pi["action"] == {"id": "TokenExchange"}
    assert "delegation_edge" not in pi
    assert [e["id"] for e in body["events"]] == ["e0", "e1"]


def test_explain_all_allow_and_unknown() -> None:
    body = shapes.explain("r", "z", [_row(decision="allow"), _row(decision="allow")])
    assert body["final_decision"] == "allow"
    assert body["denied"] == []
    assert shapes.explain("r", "z", [_row(decision=None)])["final_decision"] == "unknown"


def test_policy_input_defaults_with_empty_metadata() -> None:
    pi = shapes.policy_input("z", None)
    assert pi["principal"] == {"type": "Application", "id": "", "zone_id": "z"}
    assert pi["resource"]["scopes"] == []
    assert pi["context"] == {
        "actor_claims": {},
        "requested_scopes": [],
        "challenge_resolved": False,
    }
    assert "session" not in pi


def test_admin_audit_item_and_export() -> None:
    item = shapes.admin_audit_item(
        {
            "id": "a1",
            "chain_seq": 3,
            "chain_hmac": "h",
            "payload_json": {"change_kind": "create", "changed_fields": ["name"], "token": "x"},
            "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )
    assert item["signed"] is True
    assert item["chain_seq"] == 3
    assert item["payload_json"]["token"] == "[redacted]"
    row = shapes.admin_audit_export_row(item)
    assert list(row) == list(shapes.ADMIN_AUDIT_EXPORT_FIELDS)
    assert row["changed_fields"] == ["name"]
    unchained = shapes.admin_audit_item({"id": "a2", "chain_seq": None, "chain_hmac": None})
    assert unchained["signed"] is False
    assert unchained["chain_seq"] is None


def test_session_and_authority_columns() -> None:
    s = shapes.session_item({"id": "s1", "labels": ["refund-worker"]})
    assert list(s) == list(shapes.SESSION_COLUMNS)
    a = shapes.authority_record_item({"id": "ar1", "session_type": "user"})
    assert list(a)[: len(shapes.AUTHORITY_RECORD_COLUMNS)] == list(shapes.AUTHORITY_RECORD_COLUMNS)
    assert a["authority_record_id"] == "ar1"
