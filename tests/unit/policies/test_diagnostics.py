"""Reading regopy error records and locating byte offsets."""

from __future__ import annotations

from caracal_api.policies import diagnostics

SAMPLE = (
    "(rego-errorseq\n"
    "  (error 11:policy.rego|98|1\n"
    "    (errormsg 16:this is unclosed)\n"
    "    (errorast |98|1))\n"
    "  (error 34:caracal.platform.decision_contract|24|7\n"
    "    (errormsg 12:Syntax error)\n"
    "    (errorast |24|7)))\n"
)


def test_records_in_order_with_module_offset_and_message() -> None:
    records = diagnostics.parse_error_records(SAMPLE)
    assert [(r.module, r.offset, r.message) for r in records] == [
        ("policy.rego", 98, "this is unclosed"),
        ("caracal.platform.decision_contract", 24, "Syntax error"),
    ]
    assert diagnostics.first_message(SAMPLE) == "this is unclosed"


def test_records_without_location() -> None:
    text = "(error\n  (errormsg 25:Function not found: trace)\n  (rego-errorcode))"
    records = diagnostics.parse_error_records(text)
    assert [(r.module, r.offset, r.message) for r in records] == [
        (None, None, "Function not found: trace")
    ]


def test_message_length_prefix_counts_bytes_and_may_hold_parentheses() -> None:
    message = "bad (thing) in zürich"
    size = len(message.encode())
    text = f"(error 1:p|0|1\n  (errormsg {size}:{message})\n  (errorast))"
    assert diagnostics.parse_error_records(text)[0].message == message


def test_message_is_truncated_to_500_characters() -> None:
    long = "x" * 900
    text = f"(error 1:p|0|1 (errormsg 900:{long}))"
    assert diagnostics.first_message(text) == "x" * 500


def test_first_message_falls_back() -> None:
    assert diagnostics.first_message("(rego-errorseq)") == "compile error"
    assert diagnostics.first_message("plain words") == "plain words"


def test_line_and_column_from_a_byte_offset() -> None:
    source = "ab\ncd\n"
    assert diagnostics.line_column(source, 0) == (1, 1)
    assert diagnostics.line_column(source, 4) == (2, 2)
    assert diagnostics.line_column(source, 6) == (3, 1)


def test_column_counts_characters_after_non_ascii_text() -> None:
    source = "# zürich-ß 🚀\ngrants := é + ü\n"
    offset = source.encode().index(b"+")
    assert diagnostics.line_column(source, offset) == (2, 13)
    first_line = 'x := "🚀ß" +'
    assert diagnostics.line_column(first_line, len(first_line.encode()) - 1) == (1, 11)


def test_offsets_outside_the_source_are_clamped() -> None:
    assert diagnostics.line_column("ab", 99) == (1, 3)
    assert diagnostics.line_column("ab", -5) == (1, 1)
