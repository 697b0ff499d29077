"""Releasing the tasks the queue cap held back, as answers free room in the queue.

A round the guide's WIP limit held back in part is `releasing` (`queue_cap.py`). Each time
annotations change (a webhook applied, a reconciliation pass), a push job is queued for each
such round, oldest first; the push sends as many of its remaining tasks as the queue has
room for, in rank order. The jobs run in the project's scope, one at a time, and a second
request for the same round while one waits returns that one.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.orm import Round
from service.jobs.queue import enqueue
from service.studio.queue_cap import RELEASING

log = logging.getLogger(__name__)
PUSH_KIND = "push"


def releasing_rounds(session: Session) -> list[int]:
    """Ids of the rounds whose tasks are partly held back, oldest first."""
    query = select(Round.id).where(Round.status == RELEASING).order_by(Round.id)
    return list(session.scalars(query))


def queue_releases(ctx: ServiceContext, scope: str) -> list[str]:
    """Queue a push job for every releasing round; returns the job ids."""
    with ctx.sessions() as session:
        jobs = [
            enqueue(session, PUSH_KIND, {"round_id": round_id}, scope=scope, key=str(round_id))
            for round_id in releasing_rounds(session)
        ]
        session.commit()
        return [job.id for job in jobs]


def install_release_hook(ctx: ServiceContext, scope: str) -> None:
    """Register an annotation hook that queues the releases (it never fails intake)."""

    def hook(_image_ids: set[int] | None) -> None:
        try:
            queue_releases(ctx, scope)
        except Exception:  # the next change or reconciliation pass queues them again
            log.exception("could not queue the release of held-back tasks")

    ctx.annotation_hooks.append(hook)
