"""Agreement kept live: Krippendorff's alpha updated as each annotation is committed.

`LiveAgreement.hook` is an annotation hook of the service context (intake calls it after a
webhook's annotations are committed, with the images they touched). It re-reads only those
images' current answers and moves the changed ratings in :class:`IncrementalAgreement`, so
one annotation costs O(classes^2) in the statistics, never a recompute. A change whose
images are unknown (a reconciliation pass) or a failed update drops the state; the next
read rebuilds it from the database.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from quality.agreement import KrippendorffAlpha, PercentAgreement
from quality.incremental import IncrementalAgreement
from service.context import ServiceContext
from service.quality.data import Answer, latest_answers

log = logging.getLogger(__name__)


class LiveAgreement:
    """Live alpha and percent agreement over the current guide version's answers."""

    def __init__(self, sessions: sessionmaker[Session], guide: Guide) -> None:
        self._sessions, self._guide = sessions, guide
        self._lock = threading.Lock()
        self._state: IncrementalAgreement | None = None
        self._units: dict[int, int] = {}  # task id -> row
        self._columns: dict[int, int] = {}  # annotator id -> column
        self._rated: dict[int, dict[int, int]] = {}  # task -> annotator -> label
        self._tasks_of: dict[int, set[int]] = {}  # image id -> task ids
        self.updates = 0  # ratings moved incrementally (for tests and metrics)

    def hook(self, image_ids: set[int] | None) -> None:
        """Annotation hook: move the ratings of these images (None: rebuild on next read)."""
        with self._lock:
            if self._state is None:
                return  # nothing built yet: the first read builds it
            if image_ids is None:
                self._state = None
                return
            try:
                with self._sessions() as session:
                    answers = latest_answers(session, self._guide, image_ids=image_ids)
                self._move(image_ids, answers)
            except Exception:  # never fail intake: drop the state, rebuild on the next read
                log.exception("live agreement update failed; it will be rebuilt")
                self._state = None

    def alpha(self) -> KrippendorffAlpha:
        return self._built().alpha()

    def percent_agreement(self) -> PercentAgreement:
        return self._built().percent_agreement()

    def _built(self) -> IncrementalAgreement:
        with self._lock:
            if self._state is None:
                self._rebuild()
            assert self._state is not None
            return self._state

    def _rebuild(self) -> None:
        with self._sessions() as session:
            answers = latest_answers(session, self._guide)
        self._state = IncrementalAgreement(len(self._guide.labels))
        self._units, self._columns, self._rated, self._tasks_of = {}, {}, {}, {}
        for answer in answers:
            self._set(answer.task_id, answer.annotator, answer.label)
            self._tasks_of.setdefault(answer.image_id, set()).add(answer.task_id)

    def _move(self, image_ids: set[int], answers: list[Answer]) -> None:
        wanted: dict[int, dict[int, int]] = {}
        for answer in answers:
            wanted.setdefault(answer.task_id, {})[answer.annotator] = answer.label
            self._tasks_of.setdefault(answer.image_id, set()).add(answer.task_id)
        tasks = set(wanted).union(*(self._tasks_of.get(i, set()) for i in image_ids))
        for task in tasks:
            now = wanted.get(task, {})
            for annotator in set(self._rated.get(task, {})) - set(now):
                self._set(task, annotator, None)
            for annotator, label in now.items():
                if self._rated.get(task, {}).get(annotator) != label:
                    self._set(task, annotator, label)

    def _set(self, task: int, annotator: int, label: int | None) -> None:
        assert self._state is not None
        unit = self._units.setdefault(task, len(self._units))
        column = self._columns.setdefault(annotator, len(self._columns))
        if label is None:
            self._state.remove(unit, column)
            self._rated.get(task, {}).pop(annotator, None)
        else:
            self._state.set(unit, column, label)
            self._rated.setdefault(task, {})[annotator] = label
        self.updates += 1


def install_live_agreement(ctx: ServiceContext) -> LiveAgreement:
    """A live agreement for this context, registered as its annotation hook."""
    live = LiveAgreement(ctx.sessions, ctx.guide)
    ctx.annotation_hooks.append(live.hook)
    return live
