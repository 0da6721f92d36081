"""Wire-form JSON rendered by PostgreSQL, for list pages that would otherwise spend most of
their time turning rows into dicts.

A repository selects `row_to_json(...)::text` over a projection whose columns are named and
formatted exactly as the response fields (timestamps through `ts`); the documents are spliced
into the response unparsed. `tests/integration` compares these documents with the Python
rendering of the same rows, field by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from caracal_api.kit.pagination import encode_cursor

# foundation §1.2: UTC, six fractional digits, `Z` (the same text as kit.timefmt.format_ts).
_TS_PATTERN = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def ts(column: str) -> str:
    """SQL rendering a timestamptz column as a wire timestamp (NULL stays NULL)."""
    return f"to_char({column} AT TIME ZONE 'UTC', '{_TS_PATTERN}')"


def document(text: str) -> orjson.Fragment:
    """A JSON document from the database, embedded as is by the response encoder."""
    return orjson.Fragment(text)


def page(rows: Sequence[Any], limit: int) -> dict[str, Any]:
    """`{"items", "next_cursor"}` from rows of (doc, created_at text, id), newest first.

    The cursor is built from the rendered `created_at`, which is the text `format_ts` would
    give, so cursors from either rendering are interchangeable.
    """
    next_cursor = None
    if rows and len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_cursor(last[1], last[2])
    return {"items": [orjson.Fragment(row[0]) for row in rows], "next_cursor": next_cursor}
