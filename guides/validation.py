"""Turn pydantic validation errors into readable :class:`GuideProblem` entries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from guides.checks import GuideConflicts
from guides.errors import GuideProblem, format_location

_KINDS = {
    "string_type": "text",
    "float_type": "a number",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def problems_from_validation_error(err: ValidationError) -> list[GuideProblem]:
    """One problem per pydantic error, located by its ``loc`` (``labels[2].name``)."""
    problems: list[GuideProblem] = []
    for error in err.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, GuideConflicts):
            problems += cause.problems
            continue
        loc = tuple(error["loc"])
        if loc and loc[-1] == "[key]":
            problem = GuideProblem(
                format_location(loc[:-2]), f"key {loc[-2]!r} {message_for(error)}"
            )
        else:
            problem = GuideProblem(format_location(loc), message_for(error))
        problems.append(problem)
    return problems


def message_for(error: Mapping[str, Any]) -> str:
    """A sentence for one pydantic error, naming what was expected and what was found."""
    kind, value = error["type"], error.get("input")
    ctx: Mapping[str, object] = error.get("ctx") or {}
    if kind in _KINDS:
        message = f"must be {_KINDS[kind]}, got {describe(value)}"
        if kind == "string_type" and isinstance(value, int | float | dt.date):
            message += " (put it in quotes in the YAML)"
        return message
    special = _MESSAGES.get(kind)
    if special is not None:
        return special(ctx, value)
    return error["msg"][:1].lower() + error["msg"][1:]


def describe(value: object) -> str:
    """Name a YAML value's kind for a message: ``a number (5)``, ``text 'abc'``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, dt.date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, str):
        return f"text {_shorten(value)!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bound(symbol: str, key: str) -> Callable[[Mapping[str, object], object], str]:
    return lambda ctx, value: f"must be {symbol} {_number(ctx[key])}, got {value!r}"


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _too_short_text(ctx: Mapping[str, object], value: object) -> str:
    if ctx.get("min_length") == 1:
        return "must not be empty"
    return f"must be at least {ctx['min_length']} characters long"


def _value_error(ctx: Mapping[str, object], value: object) -> str:
    return str(ctx.get("error", "invalid value"))


_MESSAGES: dict[str, Callable[[Mapping[str, object], object], str]] = {
    "missing": lambda ctx, value: "required field is missing",
    "extra_forbidden": lambda ctx, value: "unknown field",
    "greater_than_equal": _bound(">=", "ge"),
    "greater_than": _bound(">", "gt"),
    "less_than_equal": _bound("<=", "le"),
    "less_than": _bound("<", "lt"),
    "finite_number": lambda ctx, value: f"must be a finite number, got {value!r}",
    "string_too_short": _too_short_text,
    "string_too_long": lambda ctx, value: (
        f"must be at most {ctx['max_length']} characters long (got {len(str(value))})"
    ),
    "too_short": lambda ctx, value: (
        f"must have at least {ctx['min_length']} items (got {ctx['actual_length']})"
    ),
    "too_long": lambda ctx, value: (
        f"must have at most {ctx['max_length']} items (got {ctx['actual_length']})"
    ),
    "value_error": _value_error,
}
