"""Strict JSON decoding of request bodies (foundation §4.3) and fast encoding of responses."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from caracal_api.errors import InvalidJson

MAX_DEPTH = 64
_UNSAFE = re.compile(r"[\x00\ud800-\udfff]")
_FLOAT_MAX = 1.7976931348623157e308
_JSON_WHITESPACE = " \t\n\r"


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Reject("duplicate_key")
        out[key] = value
    return out


def _reject_constant(_name: str) -> float:
    raise _Reject("non_finite_number")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Reject("non_finite_number")
    return value


def _parse_int(text: str) -> int:
    # Digits past what a 64-bit float can hold overflow it, like 1e400; also avoids the
    # interpreter's own int-length limit surfacing as an unexpected error.
    if len(text.lstrip("-")) > 309:
        raise _Reject("non_finite_number")
    value = int(text)
    if abs(value) > _FLOAT_MAX:
        raise _Reject("non_finite_number")
    return value


def _check_tree(value: Any) -> None:
    """Depth and string-safety check over the decoded tree, iteratively."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise _Reject("too_deep")
            for key, child in node.items():
                if _UNSAFE.search(key):
                    raise _Reject("unsafe_string")
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise _Reject("too_deep")
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str) and _UNSAFE.search(node):
            raise _Reject("unsafe_string")


def _fail(reason: str, **extra: Any) -> InvalidJson:
    messages = {
        "invalid_utf8": "The request body is not valid UTF-8.",
        "syntax": "The request body is not valid JSON.",
        "non_finite_number": "The request body holds a number JSON cannot represent.",
        "duplicate_key": "The request body repeats a key within one object.",
        "too_deep": f"The request body nests deeper than {MAX_DEPTH} levels.",
        "unsafe_string": "The request body holds a NUL character or an unpaired surrogate.",
    }
    return InvalidJson(messages[reason], details={"reason": reason, **extra})


_ABSENT = object()


def decode_body(raw: bytes) -> Any:
    """Decode a request body; returns ABSENT for an empty body or a bare `null`.

    Raises InvalidJson with `details.reason` for every case of foundation §4.3.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raise _fail("invalid_utf8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("invalid_utf8") from None
    if text.strip(_JSON_WHITESPACE) == "":
        # Only JSON whitespace: `str.strip()` would also drop U+00A0, U+2028, U+001C…,
        # which make the body invalid JSON rather than absent.
        return _ABSENT
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except _Reject as exc:
        raise _fail(exc.reason) from None
    except RecursionError:
        raise _fail("too_deep") from None
    except json.JSONDecodeError as exc:
        raise _fail("syntax", line=exc.lineno, column=exc.colno) from None
    try:
        _check_tree(value)
    except _Reject as exc:
        raise _fail(exc.reason) from None
    if value is None:
        return _ABSENT
    return value


def is_absent(value: Any) -> bool:
    return value is _ABSENT


ABSENT = _ABSENT


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON with non-ASCII characters unescaped."""
    return orjson.dumps(value)


def canonical_dumps(value: Any) -> str:
    """Keys sorted at every level, compact, non-ASCII unescaped (hashing, audit content)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
