"""PATCH semantics (foundation §10)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from caracal_api.errors import NoFields
from caracal_api.kit.schemas import sent_fields


def changes_of(model: BaseModel, *, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Columns to change, decided from the keys sent; 400 `no_fields` when there are none.

    Non-nullable fields reject an explicit `null` in the model itself (declared with a
    non-optional type and a `None` default), so only nullable fields can map to NULL here.
    """
    changes = {k: v for k, v in sent_fields(model).items() if k not in ignore}
    if not changes:
        raise NoFields()
    return changes
