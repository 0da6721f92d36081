"""Application trait rules (objects.md §1.2).

The body schema only checks "array of strings"; these rules answer 403 with the first
failing code, in the listed order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

from caracal_api.errors import Forbidden

MAX_TRAITS = 64
MAX_TRAIT_LENGTH = 128
_TRAIT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._:-]*$")
PRIVILEGED_NAMESPACES = frozenset({"control", "caracal.sys"})

CONTROL_SCOPES = frozenset(
    {
        "control:app:delete",
        "control:app:read",
        "control:app:write",
        "control:approval:read",
        "control:audit:read",
        "control:authority-record:read",
        "control:delegation:delete",
        "control:delegation:read",
        "control:explain:read",
        "control:grant:delete",
        "control:grant:read",
        "control:grant:write",
        "control:identity-provider:delete",
        "control:identity-provider:read",
        "control:identity-provider:write",
        "control:policy-set:delete",
        "control:policy-set:read",
        "control:policy-set:write",
        "control:policy:delete",
        "control:policy:read",
        "control:policy:write",
        "control:resource:delete",
        "control:resource:read",
        "control:resource:write",
        "control:session:delete",
        "control:session:read",
        "control:session:write",
        "control:workload:delete",
        "control:workload:read",
        "control:workload:write",
    }
)

CONTROL_SCOPES_PREFIXED = frozenset(f"control:scope:{s}" for s in CONTROL_SCOPES)

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?$"
)


class TraitCountExceeded(Forbidden):
    code = "trait_count_exceeded"
    description = "An application may carry at most 64 traits."


class TraitInvalid(Forbidden):
    code = "trait_invalid"
    description = "A trait is not valid."


class TraitDuplicate(Forbidden):
    code = "trait_duplicate"
    description = "A trait appears more than once."


class TraitForbidden(Forbidden):
    code = "trait_forbidden"
    description = "Only global admin tokens may set control or caracal.sys traits."


def namespace_of(trait: str) -> str:
    return trait.split(":", 1)[0]


def check_traits(traits: Sequence[str], *, global_caller: bool) -> None:
    """Raise the first §1.2 failure for `traits`; return when all pass."""
    if len(traits) > MAX_TRAITS:
        raise TraitCountExceeded()
    seen: set[str] = set()
    singles: set[str] = set()
    for trait in traits:
        if not 0 < len(trait) <= MAX_TRAIT_LENGTH or not _TRAIT_RE.fullmatch(trait):
            raise TraitInvalid(f"Trait {trait[:140]!r} is not a valid trait.")
        if trait in seen:
            raise TraitDuplicate(f"Trait {trait!r} appears more than once.")
        seen.add(trait)
        namespace = namespace_of(trait)
        if namespace in PRIVILEGED_NAMESPACES and not global_caller:
            raise TraitForbidden(f"Trait {trait!r} needs a global admin token.")
        if namespace == "control":
            _check_control(trait, singles)


def _check_control(trait: str, singles: set[str]) -> None:
    if trait == "control:invoke" or trait in CONTROL_SCOPES_PREFIXED:
        return
    for prefix, check in (("control:max-ttl:", _ttl_ok), ("control:expires:", _expiry_ok)):
        if trait.startswith(prefix):
            if prefix in singles:
                raise TraitInvalid(f"Only one {prefix!r} trait is allowed.")
            if not check(trait[len(prefix) :]):
                raise TraitInvalid(f"Trait {trait!r} is not a valid control trait.")
            singles.add(prefix)
            return
    raise TraitInvalid(f"Trait {trait!r} is not a valid control trait.")


def _ttl_ok(text: str) -> bool:
    return text.isascii() and text.isdigit() and 60 <= int(text) <= 900


def _expiry_ok(text: str) -> bool:
    m = _DATE_RE.fullmatch(text)
    if m is not None:
        try:
            date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return False
        return True
    m = _DATETIME_RE.fullmatch(text)
    if m is None:
        return False
    offset = m[8]
    if offset and offset != "Z":
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            return False
    try:
        datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0))  # noqa: DTZ001
    except ValueError:
        return False
    return True
