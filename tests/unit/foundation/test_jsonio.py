"""Strict request-body decoding: every `invalid_json` reason of foundation §4.3."""

from __future__ import annotations

import pytest

from caracal_api.errors import InvalidJson
from caracal_api.kit import jsonio


def reason_of(raw: bytes) -> dict[str, object]:
    with pytest.raises(InvalidJson) as caught:
        jsonio.decode_body(raw)
    error = caught.value
    assert error.status == 400
    assert error.code == "invalid_json"
    assert error.details is not None
    return error.details


def nested(depth: int, *, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


def nested_objects(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def test_plain_object_decodes() -> None:
    assert jsonio.decode_body(b'{"name": "zone", "n": [1, 2.5, true, null]}') == {
        "name": "zone",
        "n": [1, 2.5, True, None],
    }


# foundation §18 item 10 (absent bodies)
@pytest.mark.parametrize("raw", [b"", b"   ", b"\r\n\t ", b"null", b"  null\n", b"\tnull "])
def test_empty_and_null_are_absent(raw: bytes) -> None:
    assert jsonio.is_absent(jsonio.decode_body(raw))


# foundation §18 item 11 (non-object bodies decode; the route rejects them with its own code)
@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"[1, 2]", [1, 2]), (b'"text"', "text"), (b"42", 42), (b"true", True), (b"false", False)],
)
def test_non_object_values_decode(raw: bytes, value: object) -> None:
    assert jsonio.decode_body(raw) == value


# foundation §18 item 7
@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        b'{"a": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"a": "\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
        b"\xef\xbb\xbf{}",  # a leading BOM is refused even before valid JSON
        b"\xef\xbb\xbf\x00\x01\x02\xfe",  # BOM + binary
        b"\x80",
    ],
)
def test_invalid_utf8(raw: bytes) -> None:
    assert reason_of(raw) == {"reason": "invalid_utf8"}


# foundation §18 item 7
@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "trunc',  # truncated
        b'{"name": ',
        b"{name: 1}",  # unquoted keys
        b"{'name': 'x'}",  # single quotes
        b'{"a": 1} garbage',  # trailing garbage
        b'{"a": 1}{"b": 2}',
        b'{"a": 1,}',  # trailing comma
        b"[1, 2,]",
        b"{,}",
        b"undefined",
        b'{"a": 01}',
        b'{"a": .5}',
        b'{"a": +1}',
        b'{"a": "tab\there"}',  # raw control character inside a string
    ],
)
def test_syntax_errors_carry_position(raw: bytes) -> None:
    details = reason_of(raw)
    assert details["reason"] == "syntax"
    assert isinstance(details["line"], int)
    assert isinstance(details["column"], int)
    assert details["line"] >= 1
    assert details["column"] >= 1


def test_syntax_position_is_one_based_lines_and_unicode_columns() -> None:
    details = reason_of(b'{\n  "a": 1,\n}')
    assert (details["line"], details["column"]) == (3, 1)
    # Column counts characters, not bytes: "é" is two bytes but one column.
    details = reason_of('{"ééé": x}'.encode())
    assert (details["line"], details["column"]) == (1, 9)
    details = reason_of(b"{'a': 1}")
    assert (details["line"], details["column"]) == (1, 2)


# foundation §18 item 7
@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": -1e400}',
        b'{"a": 1.5e309}',
        b'{"a": [0, 2e308]}',
        ('{"a": ' + "9" * 400 + "}").encode(),  # an integer past the float range
        ('{"a": -' + "1" + "0" * 309 + "}").encode(),
        b"NaN",
    ],
)
def test_non_finite_numbers(raw: bytes) -> None:
    assert reason_of(raw) == {"reason": "non_finite_number"}


def test_large_but_finite_numbers_pass() -> None:
    assert jsonio.decode_body(b'{"a": 1.7976931348623157e308}') == {"a": 1.7976931348623157e308}
    assert jsonio.decode_body(b'{"a": 1e-400}') == {"a": 0.0}
    big = "1" + "0" * 300
    assert jsonio.decode_body(f'{{"a": {big}}}'.encode()) == {"a": int(big)}


# foundation §18 item 8
@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 1}',
        b'{"a": 1, "b": 2, "a": 3}',
        b'{"outer": {"x": [1, {"k": 1, "k": 2}]}}',
        b'[{"dup": 1, "dup": 1}]',
    ],
)
def test_duplicate_keys(raw: bytes) -> None:
    assert reason_of(raw) == {"reason": "duplicate_key"}


def test_same_key_in_sibling_objects_is_fine() -> None:
    assert jsonio.decode_body(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


# foundation §18 item 8
def test_nesting_up_to_64_levels_is_accepted() -> None:
    assert jsonio.decode_body(nested(64)) is not None
    value = jsonio.decode_body(nested_objects(64))
    for _ in range(63):
        value = value["a"]
    assert value == {"a": 1}
    # Depth counts containers only: 64 containers holding a scalar are fine.
    assert jsonio.decode_body(b"[" * 64 + b"1" + b"]" * 64) is not None


# foundation §18 item 8
@pytest.mark.parametrize(
    "raw",
    [
        nested(65),
        nested_objects(65),
        b'{"a":' * 32 + b"[" * 33 + b"]" * 33 + b"}" * 32,
        b"[" * 65 + b'"x"' + b"]" * 65,
    ],
)
def test_depth_65_is_too_deep(raw: bytes) -> None:
    assert reason_of(raw) == {"reason": "too_deep"}


# foundation §18 item 8
@pytest.mark.parametrize("depth", [5_000, 20_000])
def test_pathological_nesting_fails_cleanly(depth: int) -> None:
    assert reason_of(nested(depth)) == {"reason": "too_deep"}
    assert reason_of(nested_objects(depth)) == {"reason": "too_deep"}
    # Unbalanced as well: still a 400 with a reason, never a crash.
    unbalanced = reason_of(b"[" * depth)
    assert unbalanced["reason"] in ("too_deep", "syntax")


# foundation §18 item 9
@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "a\\u0000b"}',
        b'{"name": "\\ud800"}',
        b'{"name": "\\udfff"}',
        b'{"name": "x\\ud800y"}',
        b'{"name": "\\ude00\\ud83d"}',  # reversed pair: two lone surrogates
        b'{"a\\u0000": 1}',  # in a key
        b'{"\\ud800": 1}',
        b'{"deep": [1, {"x": ["\\u0000"]}]}',
        b'["\\ud800"]',
        b'"\\u0000"',
    ],
)
def test_unsafe_strings(raw: bytes) -> None:
    assert reason_of(raw) == {"reason": "unsafe_string"}


def test_paired_surrogates_and_other_controls_are_fine() -> None:
    assert jsonio.decode_body(b'{"e": "\\ud83d\\ude00"}') == {"e": "\U0001f600"}
    assert jsonio.decode_body(b'{"c": "\\u0001\\u001f"}') == {"c": "\x01\x1f"}


def test_every_reason_has_a_sentence() -> None:
    for raw in (b"\xff", b"{", b"NaN", b'{"a":1,"a":1}', nested(65), b'"\\u0000"'):
        with pytest.raises(InvalidJson) as caught:
            jsonio.decode_body(raw)
        assert caught.value.error_description
        assert "Traceback" not in caught.value.error_description


def test_dumps_keeps_non_ascii_unescaped() -> None:
    assert jsonio.dumps({"name": "Zoné ☃"}) == '{"name":"Zoné ☃"}'.encode()
