"""Static validation of tenant Rego content (policies.md §2.1) and the validate preview (§2.3).

Pure functions, no engine. The rules mirror the reference validator, which is written
against JavaScript regular expressions: lengths count UTF-16 code units, `\\s` is the
ECMAScript whitespace class and word boundaries are ASCII. The character classes below
spell those out so Python's Unicode-aware defaults never change a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SCHEMA_VERSION = "2026-05-20"
MAX_CONTENT_UNITS = 262_144
REQUIRED_PACKAGE = "caracal.authz"
DATA_RULES: tuple[str, ...] = (
    "app_ids",
    "grants",
    "confinement",
    "restrict",
    "risk",
    "approval_tiers",
)
FORBIDDEN_BUILTINS: tuple[str, ...] = (
    "http.send",
    "net.lookup_ip_addr",
    "net.cidr_contains",
    "net.cidr_intersects",
    "net.cidr_expand",
    "net.cidr_merge",
    "opa.runtime",
    "rand.intn",
    "time.now_ns",
)

# ECMAScript `\s` (WhiteSpace + LineTerminator).
_WS = "[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
_IDENT = "[a-zA-Z_][a-zA-Z0-9_]*"
_NOT_WORD_AHEAD = "(?![A-Za-z0-9_])"
_NOT_WORD_BEHIND = "(?<![A-Za-z0-9_])"

_STRINGS_AND_COMMENTS = re.compile(r"""\#[^\n]*|"(?:[^"\\\n]|\\[\s\S])*"|`[^`]*`""")
_QUOTES = re.compile(r"[\"`]")
_BRACKET_CHARS = frozenset("()[]{}")
_PAIRS = {")": "(", "]": "[", "}": "{"}
_PACKAGE = re.compile(rf"(?:\A|\n){_WS}*package{_WS}+([A-Za-z0-9_.]+)")
_PACKAGE_NAME = re.compile(rf"\A{_IDENT}(?:\.{_IDENT})*\Z")
_RULE = re.compile(
    rf"(?:\A|\n){_WS}*(?:default{_WS}+)?({_IDENT}){_WS}*(?:\([^\n]*?\))?{_WS}*"
    rf"(?::=|=|contains{_WS}|\{{|if{_WS})"
)
_IGNORED_RULE_WORDS = frozenset({"package", "import", "else", "with"})
_FORBIDDEN = tuple(
    (name, re.compile(rf"(?<![A-Za-z0-9_.]){re.escape(name)}{_WS}*\("))
    for name in FORBIDDEN_BUILTINS
)
_ANY_FORBIDDEN = re.compile("|".join(re.escape(name) for name in FORBIDDEN_BUILTINS))
_DIRECTIVE = re.compile(rf"(?:\A|\n){_WS}*#{_WS}*caracal:data-document{_NOT_WORD_AHEAD}")
_DEFAULT_RESULT = re.compile(rf"{_NOT_WORD_BEHIND}default{_WS}+result{_NOT_WORD_AHEAD}")
_DECISION = re.compile(rf'"decision"{_WS}*:{_WS}*"(allow|deny)"')
_INPUT_REF = re.compile(rf"{_NOT_WORD_BEHIND}input(?:\.{_IDENT})+")
_DATA_REF = re.compile(rf"{_NOT_WORD_BEHIND}data(?:\.{_IDENT})+")


class UnterminatedString(ValueError):
    """The content ends inside a string (`unterminated_string`)."""


@dataclass(frozen=True)
class StaticResult:
    """The outcome of the static validator: `code` is None when the content passed."""

    code: str | None
    package: str | None = None
    rules: tuple[str, ...] = ()
    stripped: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def data_rules(self) -> tuple[str, ...]:
        """The allowed data rules the content defines, in first-seen order."""
        return tuple(r for r in self.rules if r in DATA_RULES)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units (what the reference measures)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _blank(match: re.Match[str]) -> str:
    return "" if match.group().startswith("#") else " "


def strip_comments_and_strings(content: str) -> str:
    """§2.1 step 3: drop comments, replace each string by one space.

    Raises `UnterminatedString` when the content ends inside a string (a raw newline
    inside a double-quoted string also ends it unterminated). Matching complete strings
    and comments left to right tokenises exactly like a character scanner; a quote left
    over is one that opened a string that never closed.
    """
    stripped = _STRINGS_AND_COMMENTS.sub(_blank, content)
    if _QUOTES.search(stripped):
        raise UnterminatedString
    return stripped


def brackets_balance(stripped: str) -> bool:
    stack: list[str] = []
    for ch in stripped:
        if ch not in _BRACKET_CHARS:
            continue
        if ch in "([{":
            stack.append(ch)
        elif not stack or stack.pop() != _PAIRS[ch]:
            return False
    return not stack


def rule_names(stripped: str) -> tuple[str, ...]:
    """§2.1 step 6: rule names in first-seen order (non-overlapping line-start matches)."""
    seen: dict[str, None] = {}
    for match in _RULE.finditer(stripped):
        name = match.group(1)
        if name not in _IGNORED_RULE_WORDS:
            seen.setdefault(name, None)
    return tuple(seen)


def forbidden_builtin(stripped: str) -> str | None:
    if _ANY_FORBIDDEN.search(stripped) is None:
        return None
    for name, pattern in _FORBIDDEN:
        if pattern.search(stripped):
            return name
    return None


def has_directive(content: str) -> bool:
    return _DIRECTIVE.search(content) is not None


def validate_static(content: str) -> StaticResult:
    """Run §2.1 in order; the first failing step gives the code."""
    if not content:
        return StaticResult("empty_policy")
    if len(content) > MAX_CONTENT_UNITS or utf16_length(content) > MAX_CONTENT_UNITS:
        return StaticResult("content_too_large")
    try:
        stripped = strip_comments_and_strings(content)
    except UnterminatedString:
        return StaticResult("unterminated_string")
    if not brackets_balance(stripped):
        return StaticResult("unbalanced_delimiters")
    package_match = _PACKAGE.search(stripped)
    if package_match is None:
        return StaticResult("missing_package_declaration")
    package = package_match.group(1)
    if not _PACKAGE_NAME.match(package):
        return StaticResult("invalid_package_name", package=package)
    rules = rule_names(stripped)
    forbidden = forbidden_builtin(stripped)
    if forbidden is not None:
        return StaticResult(f"forbidden_builtin:{forbidden}", package, rules)
    if package != REQUIRED_PACKAGE:
        return StaticResult("must_use_package_caracal_authz", package, rules)
    if not has_directive(content):
        return StaticResult("must_be_data_document", package, rules)
    if "result" in rules:
        return StaticResult("data_document_must_not_define_result", package, rules)
    if not rules:
        return StaticResult("data_document_must_define_data", package, rules)
    for rule in rules:
        if rule not in DATA_RULES:
            return StaticResult(f"data_document_rule_not_allowed:{rule}", package, rules)
    return StaticResult(None, package, rules, stripped)


def check_schema_version(schema_version: str) -> str | None:
    """The schema check used on stored versions: a code, or None when supported."""
    if schema_version != SCHEMA_VERSION:
        return f"unsupported_schema_version:{schema_version}"
    return None


def preview(content: str, static: StaticResult) -> dict[str, object]:
    """§2.3: the preview of a content that passed the static validator."""
    stripped = static.stripped
    return {
        "package": static.package,
        "rules": sorted(static.rules),
        "default_result": _DEFAULT_RESULT.search(stripped) is not None,
        "decisions": sorted({m.group(1) for m in _DECISION.finditer(content)}),
        "inputs_referenced": sorted({m.group() for m in _INPUT_REF.finditer(stripped)}),
        "data_referenced": sorted({m.group() for m in _DATA_REF.finditer(stripped)}),
    }
