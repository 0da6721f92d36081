"""Pydantic building blocks for request bodies (foundation §4.2, §4.4, §10)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from caracal_api.errors import ValidationFailed, issue
from caracal_api.kit.jsonio import is_absent


class StrictBody(BaseModel):
    """Strict routes: unknown keys are rejected with the route's body code."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class LenientBody(BaseModel):
    """Every other body: unknown keys are dropped before validation."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


def _strip(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value.strip()


# Use as `Annotated[str, Trim, Length(1, 120)]`: trimmed of surrounding Unicode whitespace,
# then length-checked in code points.
Trim = BeforeValidator(_strip)


def Length(lo: int, hi: int) -> AfterValidator:
    def check(value: str) -> str:
        if not lo <= len(value) <= hi:
            raise ValueError(f"must be {lo}..{hi} characters")
        return value

    return AfterValidator(check)


class _NoNullUnlessNullable:
    """PATCH bodies: absent = unchanged, `null` = clear, but only where nullable (§10)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_nullable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("must not be null")
        return value


class StrictPatchBody(_NoNullUnlessNullable, StrictBody):
    """A strict PATCH body: declare fields as `X | None = None`; list nullable ones."""


class LenientPatchBody(_NoNullUnlessNullable, LenientBody):
    """A lenient PATCH body: declare fields as `X | None = None`; list nullable ones."""


def _issues(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors(include_url=False):
        loc = [p for p in error["loc"] if isinstance(p, str | int)]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append(issue(loc, message))
    return out


def validate_body[M: BaseModel](model: type[M], raw: Any, code: str) -> M:
    """Validate a decoded body; any failure is 400 `code` with `details.issues`."""
    if is_absent(raw):
        raise ValidationFailed(code, [issue([], "a JSON object body is required")])
    if not isinstance(raw, dict):
        raise ValidationFailed(code, [issue([], "the body must be a JSON object")])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(code, _issues(exc)) from None


def sent_fields(model: BaseModel) -> dict[str, Any]:
    """The fields present in the body (PATCH: absent = unchanged, null = clear)."""
    return {name: getattr(model, name) for name in model.model_fields_set}
