from __future__ import annotations

from pydantic import BaseModel, RootModel


class PolicyTemplate(BaseModel):
    id: str
    name: str
    description: str
    content: str


class PolicyTemplateList(RootModel[list[PolicyTemplate]]):
    """A plain JSON array (not a list envelope)."""
