"""Rounds: the images chosen, pre-labeled and pushed to Label Studio."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.routes.jobs import accepted
from service.api.schemas import (
    JobAccepted,
    RoundItemOut,
    RoundOut,
    RoundRequestIn,
    StrategiesOut,
)
from service.auth.roles import Role, requires
from service.context import ServiceContext
from service.core.errors import NotFound
from service.core.orm import Round, RoundItem
from service.jobs.queue import enqueue
from service.learning.selection import round_items
from service.learning.strategies import available_strategies, resolve_strategy
from service.studio.jobs import WITHDRAW_KIND, project_scope

router = APIRouter(tags=["rounds"])
RoundId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("/rounds", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
@requires(Role.pipeline)
def start_round(body: RoundRequestIn, context: ContextDep, session: SessionDep) -> JobAccepted:
    """Choose K pool images with a batch-selection strategy and push them, as a job.

    One round per project waits or runs at a time: asking again returns that job.
    """
    policy = context.guide.selection
    strategy = resolve_strategy(body.strategy, policy)  # unknown_strategy now, not in the job
    balanced = policy.class_balanced if body.class_balanced is None else body.class_balanced
    params = {"k": body.k, "strategy": strategy, "retrain": body.retrain, "seed": body.seed}
    params.update(class_balanced=balanced, replace_waiting=body.replace_waiting)
    job = enqueue(session, "round", params, scope=project_scope(context.settings))
    session.commit()
    return accepted(job.id)


@router.get("/rounds/strategies", response_model=StrategiesOut)
@requires(Role.pipeline, Role.reviewer)
def list_strategies(context: ContextDep) -> StrategiesOut:
    """The batch-selection strategies a round may name, and the one used when it names none."""
    default = resolve_strategy(None, context.guide.selection)
    return StrategiesOut(available=available_strategies(), default=default)


@router.get("/rounds", response_model=Page[RoundOut])
@requires(Role.pipeline, Role.reviewer)
def list_rounds(
    context: ContextDep, session: SessionDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> Page[RoundOut]:
    """Rounds by id, each with its ranked items (two queries per page, whatever its size)."""
    rows, next_cursor = page_rows(session, select(Round), Round.id, limit=limit, cursor=cursor)
    items = items_of_rounds(session, [r.id for r in rows])
    return Page(items=[round_out(context, r, items[r.id]) for r in rows], next_cursor=next_cursor)


@router.get("/rounds/{round_id}", response_model=RoundOut)
@requires(Role.pipeline, Role.reviewer)
def get_round(round_id: RoundId, context: ContextDep, session: SessionDep) -> RoundOut:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(f"round {round_id} does not exist")
    return round_out(context, round_, round_items(session, round_.id))


@router.post(
    "/rounds/{round_id}/push", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED
)
@requires(Role.pipeline)
def repush(round_id: RoundId, context: ContextDep, session: SessionDep) -> JobAccepted:
    """Push a round again after Label Studio was unreachable, as a job.

    Tasks already there are kept and a pushed round is left as it is. The job waits while
    another job works on the project (a round being pushed); asking again returns it.
    """
    if session.get(Round, round_id) is None:
        raise NotFound(f"round {round_id} does not exist")
    scope = project_scope(context.settings)
    job = enqueue(session, "push", {"round_id": round_id}, scope=scope, key=str(round_id))
    session.commit()
    return accepted(job.id)


@router.post(
    "/rounds/{round_id}/withdraw",
    response_model=JobAccepted,
    status_code=status.HTTP_202_ACCEPTED,
)
@requires(Role.pipeline)
def withdraw(round_id: RoundId, context: ContextDep, session: SessionDep) -> JobAccepted:
    """Take the round's untouched tasks out of the annotators' queue, as a job.

    Tasks with an annotation, a skip or a draft stay; the others are deleted from Label
    Studio and their images return to the pool. The job's result counts both.
    """
    if session.get(Round, round_id) is None:
        raise NotFound(f"round {round_id} does not exist")
    scope = project_scope(context.settings)
    job = enqueue(session, WITHDRAW_KIND, {"round_id": round_id}, scope=scope, key=str(round_id))
    session.commit()
    return accepted(job.id)


def round_out(context: ServiceContext, round_: Round, ranked: list[RoundItem]) -> RoundOut:
    items = [
        RoundItemOut(
            image_id=i.image_id,
            rank=i.rank,
            score=i.score,
            predicted_label=i.predicted_label,
            predicted_probability=i.predicted_probability,
            model_version=i.model_version,
            task_id=i.task_id,
            withdrawn=i.withdrawn_at is not None,
        )
        for i in ranked
    ]
    project_url = (
        context.gateway.project_url(round_.project_id) if round_.project_id is not None else None
    )
    return RoundOut(
        id=round_.id,
        status=round_.status,
        strategy=round_.strategy,
        k=round_.k,
        seed=round_.seed,
        class_balanced=round_.class_balanced,
        model_version=round_.model_version,
        pool_size=round_.pool_size,
        embedded=round_.embedded,
        embedding_rate=round_.embedding_rate,
        project_id=round_.project_id,
        project_url=project_url,
        created_at=round_.created_at,
        items=items,
    )


def items_of_rounds(session: Session, round_ids: list[int]) -> dict[int, list[RoundItem]]:
    """The items of several rounds in one query, each round's in rank order."""
    found: dict[int, list[RoundItem]] = {round_id: [] for round_id in round_ids}
    query = (
        select(RoundItem)
        .where(RoundItem.round_id.in_(round_ids))
        .order_by(RoundItem.round_id, RoundItem.rank)
    )
    for item in session.scalars(query):
        found[item.round_id].append(item)
    return found
