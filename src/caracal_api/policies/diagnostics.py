"""Reading regopy's error text and turning byte offsets into line and column.

regopy 1.5 raises `RegoError` whose text is an s-expression of error records:

    (rego-errorseq
      (error 11:policy.rego|73|4
        (errormsg 18:Invalid collection)
        ...))

`<n>:` prefixes give the byte length of the module name and of the message; the location
`|<offset>|<length>` is a byte offset into the module's UTF-8 source. Records without a
location (`(error\\n  (errormsg ...`) happen for errors raised outside any module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MESSAGE = 500

_ERROR_HEAD = re.compile(rb"\(error(?![a-z])(?: (\d+):)?")
_LOCATION = re.compile(rb"\|(\d+)\|(\d+)")
_MESSAGE_HEAD = re.compile(rb"\(errormsg (\d+):")


@dataclass(frozen=True)
class ErrorRecord:
    module: str | None
    offset: int | None
    message: str


def parse_error_records(text: str) -> list[ErrorRecord]:
    """Every error record of a regopy error text, in the order regopy lists them."""
    raw = text.encode("utf-8", "replace")
    records: list[ErrorRecord] = []
    pos = 0
    while True:
        head = _ERROR_HEAD.search(raw, pos)
        if head is None:
            break
        pos = head.end()
        module: str | None = None
        offset: int | None = None
        if head.group(1) is not None:
            size = int(head.group(1))
            module = raw[pos : pos + size].decode("utf-8", "replace")
            pos += size
            location = _LOCATION.match(raw, pos)
            if location is not None:
                offset = int(location.group(1))
                pos = location.end()
        message = ""
        msg_head = _MESSAGE_HEAD.search(raw, pos)
        next_head = _ERROR_HEAD.search(raw, pos)
        if msg_head is not None and (next_head is None or msg_head.start() < next_head.start()):
            size = int(msg_head.group(1))
            start = msg_head.end()
            message = raw[start : start + size].decode("utf-8", "replace")
            pos = start + size
        records.append(ErrorRecord(module, offset, message))
    return records


def first_message(text: str, fallback: str = "compile error") -> str:
    """regopy's first error message (at most 500 characters)."""
    for record in parse_error_records(text):
        if record.message:
            return truncate(record.message)
    stripped = text.strip()
    return truncate(stripped) if stripped and not stripped.startswith("(") else fallback


def truncate(message: str) -> str:
    return message[:MAX_MESSAGE]


def line_column(source: str, byte_offset: int) -> tuple[int, int]:
    """1-based line and column of a UTF-8 byte offset; the column counts characters."""
    raw = source.encode("utf-8")
    byte_offset = max(0, min(byte_offset, len(raw)))
    before = raw[:byte_offset]
    line_start = before.rfind(b"\n") + 1
    line = before.count(b"\n") + 1
    column = len(before[line_start:].decode("utf-8", "replace")) + 1
    return line, column
