"""Roles: what an API key may do, declared once beside each route.

Every key has one role. A route names the roles that may call it with `@requires(...)`;
`admin` may call every route. The declaration is read from the matched endpoint when a
request arrives (`check_role`), and shown in the OpenAPI schema (`x-roles`), so a route
that declares nothing is refused to every key but an admin's and the role-matrix test
fails on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, TypeVar

from service.core.errors import ServiceError

ROLES_ATTRIBUTE = "__activelabel_roles__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Role(StrEnum):
    """From the most to the least a key may do."""

    admin = "admin"  # keys, guide, activation, everything
    pipeline = "pipeline"  # images, predictions, drift checks, rounds, reading jobs
    reviewer = "reviewer"  # reports, board, audit, annotations: read-only
    viewer = "viewer"  # the board and reports


class InsufficientRole(ServiceError):
    status_code, code = 403, "insufficient_role"


class UnknownRole(ServiceError):
    status_code, code = 422, "unknown_role"


def requires(*roles: Role) -> Callable[[Endpoint], Endpoint]:
    """Declare who may call the decorated endpoint (admin always may).

    Put it below the route decorator: `@router.get(...)` then `@requires(Role.pipeline)`.
    """

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, ROLES_ATTRIBUTE, frozenset({Role.admin, *roles}))
        return endpoint

    return declare


def roles_of(endpoint: object) -> frozenset[Role] | None:
    """The roles `endpoint` declares, or None when it declares none."""
    roles = getattr(endpoint, ROLES_ATTRIBUTE, None)
    return roles if isinstance(roles, frozenset) else None


def check_role(role: str, endpoint: object) -> None:
    """Raise `InsufficientRole` unless a key of `role` may call `endpoint`."""
    allowed = roles_of(endpoint) or frozenset({Role.admin})
    if role not in allowed:
        raise InsufficientRole(
            f"a key with the role {role!r} may not call this endpoint; it needs one of: "
            f"{', '.join(ordered(allowed))}"
        )


def ordered(roles: Iterable[str]) -> list[str]:
    """Roles in the order of `Role`, most powerful first."""
    rank = {role.value: index for index, role in enumerate(Role)}
    return sorted(roles, key=lambda role: rank.get(role, len(rank)))


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as err:
        raise UnknownRole(
            f"unknown role {value!r}: one of {', '.join(role.value for role in Role)}"
        ) from err
