"""FastAPI dependencies: the context, a database session, and the API key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth.keys import MissingApiKey, authenticate
from service.auth.tables import ApiKey
from service.context import ServiceContext

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key made by `activelabel keys create NAME`: `Authorization: Bearer <key>`.",
)


def get_context(request: Request) -> ServiceContext:
    return request.app.state.context  # type: ignore[no-any-return]


def get_session(context: Annotated[ServiceContext, Depends(get_context)]) -> Iterator[Session]:
    with context.sessions() as session:
        yield session


def require_api_key(
    context: Annotated[ServiceContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    """The caller's live API key; 401 `missing_api_key` or `invalid_api_key` otherwise.

    Checked in a session of its own, so that recording the key's use never mixes with the
    route's transaction.
    """
    if credentials is None:
        raise MissingApiKey("this endpoint needs an API key: `Authorization: Bearer <key>`")
    with context.sessions() as session:
        key = authenticate(session, credentials.credentials)
        session.commit()
        return key


ContextDep = Annotated[ServiceContext, Depends(get_context)]
SessionDep = Annotated[Session, Depends(get_session)]
CurrentKey = Annotated[ApiKey, Depends(require_api_key)]
