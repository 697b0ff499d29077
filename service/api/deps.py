"""FastAPI dependencies: the context, a database session and the job runner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.jobs.runner import JobRunner


def get_context(request: Request) -> ServiceContext:
    return request.app.state.context  # type: ignore[no-any-return]


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs  # type: ignore[no-any-return]


def get_session(context: Annotated[ServiceContext, Depends(get_context)]) -> Iterator[Session]:
    with context.sessions() as session:
        yield session


ContextDep = Annotated[ServiceContext, Depends(get_context)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
SessionDep = Annotated[Session, Depends(get_session)]
