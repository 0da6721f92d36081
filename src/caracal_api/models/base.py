"""Declarative base shared by every model.

Names of tables, columns, constraints and indexes follow schema.md exactly: other Caracal
services read the same tables, so every constraint and index carries its explicit name
rather than one derived by a naming convention.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, LargeBinary, Text, TextClause, text
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 - read by SQLAlchemy at class creation
        str: Text(),
        datetime: DateTime(timezone=True),
        bool: Boolean(),
        int: Integer(),
        bytes: LargeBinary(),
    }


# Server defaults, written the way PostgreSQL reports them back so that `alembic check`
# compares them textually instead of evaluating both sides on the server.
NOW = text("now()")
FALSE = text("false")
TRUE = text("true")
ZERO = text("0")
EMPTY_TEXT_ARRAY = text("'{}'::text[]")
EMPTY_JSONB_OBJECT = text("'{}'::jsonb")
EMPTY_JSONB_ARRAY = text("'[]'::jsonb")


def text_default(value: str) -> TextClause:
    """Server default for a text column holding a fixed word (e.g. `'active'::text`)."""
    if "'" in value:
        raise ValueError("text defaults are plain words")
    return text(f"'{value}'::text")
