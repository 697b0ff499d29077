"""Unknown query parameters are refused: 422 `invalid_request`, naming them and the known ones.

A route's known parameters are those its signature and dependencies declare (what OpenAPI
documents), read once per route. The check is a router dependency attached in `app.py`, after
the key check where a router has one, so a caller without a key still gets 401 first. Routes
that Label Studio calls with its own protocol (the ML backend, the webhook) are mounted
without it: extra parameters there are ignored, as that protocol expects.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel


class DeclaredQuery:
    """The query parameter names each route declares (cached per route)."""

    def __init__(self) -> None:
        self._names: dict[int, frozenset[str]] = {}

    def of(self, route: APIRoute) -> frozenset[str]:
        names = self._names.get(id(route))
        if names is None:
            names = self._names[id(route)] = frozenset(_query_names(route.dependant))
        return names


def _query_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    for field in dependant.query_params:
        model = field.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):  # a query model
            names |= {f.alias or name for name, f in model.model_fields.items()}
        else:
            names.add(field.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def refuse_unknown_query(
    declared: DeclaredQuery,
) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A dependency refusing a request whose query names a parameter its route does not take."""

    async def check(request: Request) -> None:
        route = request.scope.get("route")
        if not isinstance(route, APIRoute):
            return
        known = declared.of(route)
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            takes = ", ".join(sorted(known)) or "none"
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": f"unknown query parameter; this operation takes: {takes}",
                        "type": "unknown_parameter",
                    }
                    for name in unknown
                ]
            )

    return check


def strict_query() -> Any:
    """`Depends(...)` of the check, with its own cache of declared names."""
    return Depends(refuse_unknown_query(DeclaredQuery()))
