"""Predictions for pipelines: label, class probabilities and uncertainty from the active model.

Images come as registered ids or as uploaded bytes; either way the backbone embeds them in
the runtime's batches (stored embeddings are reused for ids) and the active head scores them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import ImageDecodeError
from models.head import TrainedHead
from models.images import inspect_image
from models.uncertainty import get_strategy
from service.context import ServiceContext
from service.core.errors import InvalidImage, NoModel, NotFound
from service.core.orm import Image, ModelVersion
from service.learning.versions import active_model
from service.pool.embeddings import ensure_embeddings, stack

DEFAULT_STRATEGY = "entropy"  # the uncertainty rounds rank by unless told otherwise


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]  # class name -> probability
    uncertainty: float  # DEFAULT_STRATEGY's score: higher means less sure


@dataclass(frozen=True)
class Predictions:
    model_version: str
    strategy: str
    items: list[Prediction]  # in the order of the input


def predict_images(session: Session, ctx: ServiceContext, image_ids: Sequence[int]) -> Predictions:
    """Predictions for registered images (a use case: commits the embeddings it computed)."""
    model = _active(session, ctx)
    wanted = list(dict.fromkeys(image_ids))
    found = {i.id: i for i in session.scalars(select(Image).where(Image.id.in_(wanted)))}
    missing = [image_id for image_id in wanted if image_id not in found]
    if missing:
        raise NotFound("some images are not registered", details={"missing": missing})
    stored = ensure_embeddings(session, ctx.runtime, list(found.values()))
    session.commit()
    unreadable = [image_id for image_id in wanted if image_id not in stored.vectors]
    if unreadable:
        raise InvalidImage("some images could not be read", details={"unreadable": unreadable})
    probs = _head(ctx, model).predict_proba(stack(stored.vectors, list(image_ids)))
    return _predictions(model, probs)


def predict_files(
    session: Session, ctx: ServiceContext, files: Sequence[tuple[str, bytes]]
) -> Predictions:
    """Predictions for uploaded images (name, bytes), which are not registered or kept."""
    model = _active(session, ctx)
    with tempfile.TemporaryDirectory(prefix="activelabel-predict-") as folder:
        limit = ctx.settings.max_image_pixels
        paths = [
            _checked_file(Path(folder) / f"{n:05d}.img", name, data, max_pixels=limit)
            for n, (name, data) in enumerate(files)
        ]
        result = ctx.runtime.embed(paths)
    if result.failures or len(result.indices) != len(paths):
        raise InvalidImage("some uploads could not be embedded")
    return _predictions(model, _head(ctx, model).predict_proba(result.embeddings))


def _checked_file(path: Path, name: str, data: bytes, *, max_pixels: int) -> Path:
    """Write one upload to `path` and decode it fully: `InvalidImage` naming it otherwise."""
    path.write_bytes(data)
    try:
        inspect_image(path, max_pixels=max_pixels)
    except ImageDecodeError as err:
        raise InvalidImage(f"{name}: {err.reason}", details={"code": err.code}) from err
    return path


def _active(session: Session, ctx: ServiceContext) -> ModelVersion:
    model = active_model(session, ctx)
    if model is None:
        raise NoModel("no model version is active: import labels and train one first")
    return model


def _head(ctx: ServiceContext, model: ModelVersion) -> TrainedHead:
    return ctx.runtime.head(model.id, model.checkpoint_path)


def _predictions(model: ModelVersion, probs: np.ndarray) -> Predictions:
    """probs: (n_images, n_classes) of `model`'s classes."""
    scores = get_strategy(DEFAULT_STRATEGY)(probs)
    names = list(model.class_names)
    items = [
        Prediction(
            label=names[int(np.argmax(row))],
            probabilities={name: float(p) for name, p in zip(names, row, strict=True)},
            uncertainty=float(score),
        )
        for row, score in zip(probs, scores, strict=True)
    ]
    return Predictions(model_version=model.id, strategy=DEFAULT_STRATEGY, items=items)
