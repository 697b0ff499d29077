"""Predictions for Label Studio's ML backend protocol: many tasks per call, one answer each.

A task the service pushed carries `data.image_id`: its stored embedding (or image) is used.
A task made inside Label Studio carries only an image URL: the service's own signed media
URLs map back to the image, other URLs are fetched from allowed hosts (`fetch.py`). Images
are embedded in batches within the call's time budget (`images.py`); stored and fetched
vectors go through the active head together. A task whose image cannot be had, or that the
budget left out, gets an answer without a `result` (its `error` says why): Label Studio then
skips it and logs the answer, and asks again next time.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.label_config import ChoicesTarget
from labeling.studio_config import CHOICES_FIELD, IMAGE_FIELD
from labeling.tasks import Suggestion, prediction_payload
from service.context import ServiceContext
from service.core.errors import NoModel, ServiceError
from service.core.orm import Image, ModelVersion
from service.learning.versions import active_model
from service.studio.ml_backend.images import Budget, Problem, fetched_vectors, stored_vectors

log = logging.getLogger(__name__)
MAX_ID = 2**63 - 1
LOGGED_PROBLEMS = 20  # tasks without a prediction logged one by one per call; then counted


class LabelConfigMismatch(ServiceError):
    status_code, code = 422, "label_config_mismatch"


@dataclass(frozen=True)
class Source:
    """Where one task's image comes from: a registered image, a URL, or neither (why)."""

    image_id: int | None = None
    url: str | None = None
    problem: Problem | None = None


def service_target(ctx: ServiceContext) -> ChoicesTarget:
    """The labeling config the service builds for its own project."""
    return ChoicesTarget(CHOICES_FIELD, IMAGE_FIELD, IMAGE_FIELD, tuple(ctx.guide.label_names))


def require_model(session: Session, ctx: ServiceContext) -> ModelVersion:
    model = active_model(session, ctx)
    if model is None:
        raise NoModel(
            "no model version is active yet: import labels and train one "
            "(Start training in Label Studio, or POST /v1/models/train)"
        )
    return model


def label_columns(class_names: Sequence[str], choices: Sequence[str]) -> list[int]:
    """Columns of the model's classes that the project's Choices offer (in class order)."""
    offered = set(choices)
    columns = [n for n, name in enumerate(class_names) if name in offered]
    if not columns:
        raise LabelConfigMismatch(
            "none of the model's labels is a choice of this project's labeling config",
            details={"model_labels": list(class_names), "config_choices": list(choices)[:100]},
        )
    return columns


def predict_tasks(
    ctx: ServiceContext,
    tasks: Sequence[dict[str, Any]],
    target: ChoicesTarget,
) -> list[dict[str, Any]]:
    """One answer per task, in order: a prediction, or an `error` without a `result`."""
    budget = Budget(ctx.settings.ml_backend.predict_budget_s)
    hits = ctx.fetched_embeddings.hits
    with ctx.sessions() as session:
        model = require_model(session, ctx)
        columns = label_columns(model.class_names, target.choices)
        known = _registered(session, [_image_id(task) for task in tasks])
        sources = [source_of(ctx, task, target, known) for task in tasks]
        image_ids = [s.image_id for s in sources if s.image_id is not None]
        stored = stored_vectors(session, ctx, image_ids, budget)
    urls = list(dict.fromkeys(s.url for s in sources if s.url is not None))
    fetched = fetched_vectors(ctx, urls, budget)
    rows: dict[int, np.ndarray] = {}
    problems: dict[int, Problem] = {}
    for n, source in enumerate(sources):
        found: np.ndarray | Problem | None = source.problem
        if source.image_id is not None:
            found = stored.get(source.image_id)
        elif source.url is not None:
            found = fetched.get(source.url)
        if isinstance(found, np.ndarray):
            rows[n] = found
        else:
            problems[n] = found or Problem("no_image", "no image was found for the task")
    answers = _answers(ctx, model, columns, rows, target)
    for n, problem in problems.items():
        answers[n] = {
            "model_version": model.id,
            "task": tasks[n].get("id"),
            "error": {"code": problem.code, "message": problem.message},
        }
    _log(tasks, problems, model.id, budget, ctx.fetched_embeddings.hits - hits, len(rows))
    return [answers[n] for n in range(len(tasks))]


def _log(
    tasks: Sequence[dict[str, Any]],
    problems: dict[int, Problem],
    version: str,
    budget: Budget,
    cached: int,
    predicted: int,
) -> None:
    """The tasks without a prediction (the first few one by one), then the call's counts."""
    shown = [(n, p) for n, p in problems.items() if p.code != "over_budget"][:LOGGED_PROBLEMS]
    for n, problem in shown:
        log.warning(
            "no prediction for task %s: %s (%s)", tasks[n].get("id"), problem.message, problem.code
        )
    codes = Counter(problem.code for problem in problems.values())
    log.info(
        "predicted %d of %d tasks with %s in %.1f s (%d images embedded, %d from the cache); "
        "none for %s",
        predicted,
        len(tasks),
        version,
        budget.clock() - budget.started,
        budget.embedded,
        cached,
        dict(codes) or "no task",
    )
    if codes["over_budget"]:
        log.warning(
            "%d of %d tasks left for the next call: the %g s budget of one call was spent",
            codes["over_budget"],
            len(tasks),
            budget.seconds,
        )


def source_of(
    ctx: ServiceContext, task: dict[str, Any], target: ChoicesTarget, registered: set[int]
) -> Source:
    """The task's registered image (`data.image_id`), else its image URL, else why not."""
    data = task.get("data")
    if not isinstance(data, dict):
        return Source(problem=Problem("invalid_task", "the task has no `data` object"))
    image_id = _image_id(task)
    if image_id is not None and image_id in registered:
        return Source(image_id=image_id)
    url = data.get(target.image_key)
    if not isinstance(url, str) or not url.strip():
        message = f"the task's data has no image URL under {target.image_key!r}"
        return Source(problem=Problem("no_image", message))
    own = _own_media_id(ctx, url)
    if isinstance(own, Problem):
        return Source(problem=own)
    return Source(image_id=own) if own is not None else Source(url=url.strip())


def _image_id(task: dict[str, Any]) -> int | None:
    data = task.get("data")
    value = data.get("image_id") if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def _registered(session: Session, image_ids: Sequence[int | None]) -> set[int]:
    wanted = sorted({i for i in image_ids if i is not None})
    found: set[int] = set()
    for start in range(0, len(wanted), 500):  # under every database's bind-parameter limit
        chunk = wanted[start : start + 500]
        found.update(session.scalars(select(Image.id).where(Image.id.in_(chunk))))
    return found


MEDIA_PATH = re.compile(r"/v1/media/([0-9]{1,19})$")


def _own_media_id(ctx: ServiceContext, url: str) -> int | Problem | None:
    """The image id of one of the service's signed media URLs (checked), else None."""
    if not url.startswith(ctx.media.public_url + "/"):
        return None
    parts = urlsplit(url)
    match = MEDIA_PATH.search(parts.path)
    query = parse_qs(parts.query)
    if match is None or not query.get("exp", [""])[0].isdigit() or "sig" not in query:
        return None
    image_id, expires = int(match.group(1)), int(query["exp"][0][:19])
    try:
        ctx.media.verify(image_id, expires, query["sig"][0][:128])
    except ServiceError as err:
        return Problem(err.code, str(err))
    return image_id


def _answers(
    ctx: ServiceContext,
    model: ModelVersion,
    columns: list[int],
    rows: dict[int, np.ndarray],
    target: ChoicesTarget,
) -> dict[int, dict[str, Any]]:
    """Predictions for the tasks with an embedding, limited to the config's choices."""
    if not rows:
        return {}
    order = sorted(rows)
    head = ctx.runtime.head(model.id, model.checkpoint_path)
    probs = head.predict_proba(np.stack([rows[n] for n in order]))[:, columns]
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    names = [model.class_names[c] for c in columns]
    answers = {}
    for n, row in zip(order, probs, strict=True):
        best = int(np.argmax(row))
        payload = prediction_payload(Suggestion(names[best], float(row[best]), model.id))
        for region in payload["result"]:
            region.update(from_name=target.from_name, to_name=target.to_name)
        answers[n] = payload
    return answers
