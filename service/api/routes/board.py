"""The flow board: `GET /v1/board` (JSON) and `GET /v1/board.html` (a page that keeps itself
up to date), with an API key or a signed link from `POST /v1/board/link`.

A browser cannot send `Authorization: Bearer`, so a key holder asks for a link that lives a
few hours (`?exp=&sig=`, see `service.flow.links`); it opens the board and the quality reports
the board links (`/v1/board/reports/{id}.html`), nothing else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from service.api.deps import ContextDep, bearer, require_api_key
from service.api.observability import name_actor
from service.api.routes.reports import render
from service.auth.roles import Role, requires
from service.context import ServiceContext
from service.core.logs import set_actor
from service.flow.board import build_board
from service.flow.links import DEFAULT_LIFETIME_S, MAX_LIFETIME_S, board_link, check_link
from service.flow.page import board_html
from service.flow.schemas import Board
from service.quality.store import get_report

router = APIRouter(tags=["board"])


def board_access(
    request: Request,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    exp: Annotated[int | None, Query(ge=0, le=2**40, description="a signed link's expiry")] = None,
    sig: Annotated[
        str | None, Query(max_length=128, description="a signed link's signature")
    ] = None,
) -> None:
    """A signed link (`exp` and `sig`) or, without one, an API key."""
    if exp is not None or sig is not None:
        check_link(context.media, exp if exp is not None else -1, sig or "")
        set_actor("board-link")
        return
    key = require_api_key(request, context, credentials)
    set_actor(f"key:{key.name}")


BoardAccess = Depends(board_access)


def _board(context: ServiceContext) -> Board:
    with context.sessions() as session:
        return build_board(session, context)


@router.get("/board", response_model=Board, dependencies=[BoardAccess])
@requires(Role.pipeline, Role.reviewer, Role.viewer)
async def board(context: ContextDep) -> Board:
    """The labeling flow now: columns with counts and oldest items, WIP, lead time and
    throughput, the bottleneck, and the latest quality and drift results."""
    return await run_in_threadpool(_board, context)


@router.get("/board.html", response_class=HTMLResponse, dependencies=[BoardAccess])
@requires(Role.pipeline, Role.reviewer, Role.viewer)
async def board_page(context: ContextDep) -> Response:
    """The board as a page that refreshes itself from `GET /v1/board` every few seconds."""
    page = board_html(await run_in_threadpool(_board, context))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/board/reports/{report_id}.html", response_class=HTMLResponse)
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def board_report(
    report_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    context: ContextDep,
    _: Annotated[None, BoardAccess],
) -> Response:
    """A quality report's page, for whoever may read the board."""
    with context.sessions() as session:
        return HTMLResponse(render(get_report(session, report_id)))


class BoardLink(BaseModel):
    url: str
    expires_at: int  # unix time


@router.post("/board/link", response_model=BoardLink, dependencies=[Depends(name_actor)])
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def link(
    context: ContextDep,
    lifetime_s: Annotated[int, Query(ge=60, le=MAX_LIFETIME_S)] = DEFAULT_LIFETIME_S,
) -> BoardLink:
    """A signed URL of the board page that a browser opens without a key, for `lifetime_s`."""
    url, expires = board_link(context.media, lifetime_s=lifetime_s)
    return BoardLink(url=url, expires_at=expires)
