"""Training a new model version on every confirmed label."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from guides import Guide
from models.checkpoint import save_checkpoint
from models.head import TrainedHead
from service.audit import record
from service.context import ServiceContext
from service.core.errors import NotEnoughLabels
from service.core.orm import Image, ModelVersion
from service.core.progress import Progress, no_progress, scaled
from service.learning.gold import GOLD_SOURCE
from service.learning.heads import fit_head
from service.learning.versions import active_model, set_active
from service.pool.embeddings import embed_missing, embedding_store, ensure_embeddings, stack

log = logging.getLogger(__name__)


def labeled_images(session: Session, label_names: Sequence[str]) -> list[Image]:
    """Usable images whose confirmed label is one of `label_names` (the guide's), by id."""
    return list(
        session.scalars(
            select(Image)
            .where(
                Image.label.in_(list(label_names)),
                Image.unusable_reason.is_(None),
                Image.source != GOLD_SOURCE,  # gold answers score annotators, never train the model
            )
            .order_by(Image.id)
        )
    )


def unlabeled_pool() -> tuple[ColumnElement[bool], ...]:
    """Conditions on `Image` for a usable pool image without a confirmed label (not gold)."""
    return (
        Image.label.is_(None),
        Image.unusable_reason.is_(None),
        Image.source != GOLD_SOURCE,  # gold images are not pool images
    )


def unlabeled_images(session: Session) -> list[Image]:
    """Usable pool images without a confirmed label, by id."""
    return list(session.scalars(select(Image).where(*unlabeled_pool()).order_by(Image.id)))


def labels_outside_guide(session: Session, guide: Guide) -> dict[str, int]:
    """Confirmed labels the guide no longer has, with their image counts.

    Those images keep their label (a guide may bring it back) but no model trains on them.
    """
    rows = session.execute(
        select(Image.label, func.count())
        .where(Image.label.is_not(None), Image.label.not_in(guide.label_names))
        .group_by(Image.label)
    ).tuples()
    return {str(label): count for label, count in rows}


def current_model(session: Session, ctx: ServiceContext) -> ModelVersion | None:
    """The active model version (see `learning/versions.py`), or None."""
    return active_model(session, ctx)


def train_model(
    session: Session, ctx: ServiceContext, *, progress: Progress = no_progress
) -> ModelVersion:
    """Embed the labeled images, train a head on them, save it and record its version."""
    images = labeled_images(session, ctx.guide.label_names)
    excluded = labels_outside_guide(session, ctx.guide)
    if excluded:
        log.warning("not training on labels removed from the guide: %s", excluded)
    minimum = ctx.settings.model.min_labels_to_train
    if len(images) < minimum:
        raise NotEnoughLabels(f"{len(images)} confirmed labels; training needs at least {minimum}")
    if ctx.guide.training.head == "semi_supervised":  # it learns from the unlabeled pool too
        embed_missing(
            session, ctx.runtime, unlabeled_images(session), progress=scaled(progress, 0, 0.5)
        )
    vectors = ensure_embeddings(
        session, ctx.runtime, images, progress=scaled(progress, 0.5, 0.7)
    ).vectors
    usable = [image for image in images if image.id in vectors]
    labels = np.array([ctx.guide.label_index(str(image.label)) for image in usable], dtype=np.int64)
    progress(0.7, f"training on {len(usable)} labels")
    ids = np.array([image.id for image in usable], dtype=np.int64)
    x = stack(vectors, ids.tolist())
    epochs = ctx.settings.model.train_epochs
    fitted = fit_head(
        ctx.guide.training.head,
        embedding_store(session, ctx.runtime),
        ids,
        x,
        labels,
        class_names=ctx.guide.label_names,
        backbone_id=ctx.runtime.backbone_id,
        epochs=epochs,
        progress=lambda epoch, total: progress(0.7 + 0.2 * epoch / total, f"epoch {epoch}/{total}"),
    )
    progress(0.9, "evaluated on held-out labels and calibrated")
    evaluation = fitted.evaluation.as_dict() if fitted.evaluation is not None else None
    return record_version(
        session,
        ctx,
        fitted.head,
        digest=labels_digest(usable),
        excluded=excluded,
        evaluation=evaluation,
        head_kind=(fitted.kind, fitted.note),
    )


def labels_digest(images: list[Image]) -> str:
    """A digest of which images carry which label: it changes with any new or corrected label."""
    digest = hashlib.sha256()
    for image in sorted(images, key=lambda i: i.id):
        digest.update(f"{image.id}\t{image.label}\n".encode())
    return digest.hexdigest()


def record_version(
    session: Session,
    ctx: ServiceContext,
    head: TrainedHead,
    *,
    digest: str,
    excluded: dict[str, int] | None = None,
    evaluation: dict[str, object] | None = None,
    head_kind: tuple[str, str] = ("supervised", ""),
) -> ModelVersion:
    """Save `head`'s checkpoint and its row (once per version id), audited as `model.trained`.

    `excluded`: labels left out because the guide no longer has them, with their counts;
    `evaluation`: its out-of-sample evaluation (`service/learning/evaluation.py`);
    `head_kind`: the head trained and, when it is not the guide's, why.
    """
    existing = session.get(ModelVersion, head.version)
    if existing is not None:  # the same head again: reuse its row, as trained on these labels
        existing.labels_digest = digest
        set_active(session, ctx, existing)
        session.commit()
        ctx.runtime.remember(head)
        return existing
    path = save_checkpoint(head, ctx.settings.checkpoint_dir)
    version = ModelVersion(
        id=head.version,
        backbone_id=head.backbone_id,
        checkpoint_path=str(path),
        n_train=head.n_train,
        class_names=list(head.class_names),
        metrics=dict(head.metrics),
        guide_fingerprint=ctx.guide.fingerprint(),
        labels_digest=digest,
        evaluation=evaluation,
    )
    session.add(version)
    after = {
        "n_train": head.n_train,
        "metrics": dict(head.metrics),
        "excluded": excluded or {},
        "evaluation": evaluation,
        "head": head_kind[0],
        **({"head_note": head_kind[1]} if head_kind[1] else {}),
    }
    record(session, "model.trained", subject=("model_version", version.id), after=after)
    set_active(session, ctx, version)
    session.commit()
    ctx.runtime.remember(head)
    return version


def needs_training(session: Session, model: ModelVersion | None) -> bool:
    """True when no model exists or a confirmed label was added or changed since its training."""
    if model is None:
        return True
    return model.labels_digest != labels_digest(labeled_images(session, model.class_names))
