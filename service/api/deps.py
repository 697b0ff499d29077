"""FastAPI dependencies: the context, a database session, and the API key.

The session's kind follows the HTTP method, in this one place: GET and HEAD get a read-only
session (it never takes the write lock), every other method a unit of work that takes the
write lock when it begins (see `service.core.db`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth.keys import MissingApiKey, authenticate, record_use
from service.auth.roles import check_role
from service.auth.tables import ApiKey
from service.context import ServiceContext

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key made by `activelabel keys create NAME`: `Authorization: Bearer <key>`.",
)


def get_context(request: Request) -> ServiceContext:
    return request.app.state.context  # type: ignore[no-any-return]


READ_METHODS = frozenset({"GET", "HEAD"})
KEY_USE_WAIT_S = 0.1  # how long recording a key's use may wait for the write lock


def get_session(
    request: Request, context: Annotated[ServiceContext, Depends(get_context)]
) -> Iterator[Session]:
    opened = context.reading if request.method in READ_METHODS else context.writing
    with opened() as session:
        yield session


def require_api_key(
    request: Request,
    context: Annotated[ServiceContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    """The caller's live API key; 401 `missing_api_key` or `invalid_api_key` otherwise, and
    403 `insufficient_role` when its role may not call the route (`service.auth.roles`).

    Checked in a read-only session; the key's use (at most one write a minute) is recorded
    in a short unit of its own, never mixed with the route's transaction.
    """
    if credentials is None:
        raise MissingApiKey("this endpoint needs an API key: `Authorization: Bearer <key>`")
    with context.reading() as session:
        key = authenticate(session, credentials.credentials, record_use=False)
    record_use(
        lambda: context.writing(wait_s=KEY_USE_WAIT_S), key, skipped=context.skipped_key_uses
    )
    check_role(key.role, request.scope.get("endpoint"))
    return key


ContextDep = Annotated[ServiceContext, Depends(get_context)]
SessionDep = Annotated[Session, Depends(get_session)]
CurrentKey = Annotated[ApiKey, Depends(require_api_key)]
