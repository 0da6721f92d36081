"""Recognising data documents that are plain JSON literals, so bundles can load them as data.

rego-cpp evaluates a large object literal in time that grows faster than quadratically
with its size (measured: 800 grants ≈ 0.6 s per evaluation, 5,000 grants ≈ 25 s), and it
re-evaluates the literal on every query. The same document loaded as base data
(`add_data_json`) is parsed once. Most data documents are exactly that shape
(`grants := {...}`, as the caracalai-admin reconcilers write them), so a bundle whose
every tenant module is a list of `<data rule> := <JSON>` statements, with no rule defined
twice, is built from the JSON texts instead of the Rego modules. Anything else (computed
rules, partial rules, `default`, other imports, a rule defined twice) is compiled as Rego,
unchanged.

Two more rego-cpp costs shape the data: looking up a key scans an object's keys one by one
(≈ 1.3 µs per key: 6.5 ms for the last of 5,000 grants), and looking up an absent key of
`data.caracal.authz` next to a large document costs ≈ 60 ms. So the object documents the
contract looks up by key (`grants`, `app_ids`) go into an index under
`data.caracal.platform.index.<name>`, bucketed by the first two hex digits of the key's MD5
(16 × 16 buckets, ~20 keys each at 5,000), with `{}` left in their place; and absent
documents are filled with an empty value that the contract reads exactly like an absent
one. The contract reads indexed documents only through its `keyed()` helper.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from caracal_api.policies.validation import DATA_RULES

_SKIP = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_LINE_END = r"(?=[ \t\r]*(?:#[^\n]*)?(?:\n|\Z))"
_PACKAGE = re.compile(rf"package[ \t]+caracal\.authz{_LINE_END}")
_IMPORT = re.compile(
    rf"import[ \t]+(?:rego\.v1|future\.keywords(?:\.(?:in|if|contains|every))?){_LINE_END}"
)
_ASSIGN = re.compile(rf"({'|'.join(DATA_RULES)})[ \t]*:?=[ \t]*")
_AFTER_VALUE = re.compile(r"[ \t\r]*(?:#[^\n]*)?(?:\n|\Z)")

# What an absent document means to the contract, spelled as a value: no members, no keys.
# Filling absent documents keeps every lookup of the contract on defined data (rego-cpp
# pays ~60 ms per lookup of an undefined key next to a large base document).
ABSENT_AS_EMPTY: dict[str, str] = {
    "app_ids": "{}",
    "grants": "{}",
    "confinement": "[]",
    "restrict": "{}",
    "risk": "[]",
    "approval_tiers": "[]",
}


INDEXED = ("app_ids", "grants")


class _Number(str):
    """A JSON number kept as its source text, so re-serialised data reads the same."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def _number(text: str) -> _Number:
    if not math.isfinite(float(text)):
        raise ValueError("number out of range")
    return _Number(text)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_number, parse_int=_number)


def json_statements(content: str) -> list[tuple[str, str]] | None:
    """`[(rule, json_text), ...]` when the content is only JSON data statements, else None."""
    statements: list[tuple[str, str]] = []
    seen_package = False
    pos = 0
    end = len(content)
    while True:
        pos = _SKIP.match(content, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            break
        if (m := _PACKAGE.match(content, pos)) is not None:
            if seen_package or statements:
                return None
            seen_package, pos = True, m.end()
        elif (m := _IMPORT.match(content, pos)) is not None:
            if not seen_package:
                return None
            pos = m.end()
        elif (m := _ASSIGN.match(content, pos)) is not None:
            if not seen_package:
                return None
            try:
                _, value_end = _DECODER.raw_decode(content, m.end())
            except ValueError:
                return None
            after = _AFTER_VALUE.match(content, value_end)
            if after is None:
                return None
            statements.append((m.group(1), content[m.end() : value_end]))
            pos = after.end()
        else:
            return None
    return statements if seen_package and statements else None


def has_single_definitions(statements: list[tuple[str, str]]) -> bool:
    names = [name for name, _ in statements]
    return len(names) == len(set(names))


def bucket(key: str) -> tuple[str, str]:
    """The index bucket of a key, as the contract computes it with `crypto.md5`."""
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    return digest[0], digest[1]


def _dump(value: Any) -> str:
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _index(text: str) -> str | None:
    """The bucketed index of an object document, or None to keep it as written."""
    value = _DECODER.decode(text)
    if not isinstance(value, dict):
        return None
    index: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        for key, item in value.items():
            first, second = bucket(key)
            index.setdefault(first, {}).setdefault(second, {})[key] = item
    except UnicodeEncodeError:
        return None
    return _dump(index)


def data_json(module_contents: list[str]) -> str | None:
    """The base-data JSON of a bundle whose modules are all plain data, else None."""
    merged: dict[str, str] = {}
    for content in module_contents:
        statements = json_statements(content)
        if statements is None:
            return None
        for name, text in statements:
            if name in merged:
                return None  # defined twice: regopy decides (equal values or a conflict)
            merged[name] = text
    indexes: dict[str, str] = {}
    for name in INDEXED:
        if name in merged and (index := _index(merged[name])) is not None:
            indexes[name] = index
            merged[name] = "{}"
    parts = [f'"{name}":{merged.get(name, ABSENT_AS_EMPTY[name])}' for name in DATA_RULES]
    index_parts = [f'"{name}":{text}' for name, text in indexes.items()]
    return (
        '{"caracal":{"authz":{'
        + ",".join(parts)
        + '},"platform":{"index":{'
        + ",".join(index_parts)
        + "}}}}"
    )
