"""A pipeline's batch checked for drift before it joins the pool.

The batch is registered image ids, or files (uploads or a folder under the allowed roots)
that are decoded and embedded without being registered. It is compared with the guide
version's reference (`drift.data`), the batch's own images left out of it. The image and
prediction checks are combined by Holm: at most `alpha` false alarms per batch. A pipeline's
batches are separate decisions, so they spend no alpha of the pool's drift reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from quality.drift import DriftResult
from quality.drift.combine import holm
from service.context import ServiceContext
from service.core.errors import NotFound, ServiceError
from service.core.orm import Image
from service.core.progress import Progress, no_progress, scaled
from service.quality.drift import checks as C
from service.quality.drift.data import (
    Sample,
    describe_reference,
    reference_for,
    reference_sample,
)
from service.quality.drift.gather import Embedded, embedded, probabilities
from service.quality.drift.schemas import BatchVerdict, CheckOut, SkippedFile
from service.quality.verdicts import drift_verdict

MAX_BATCH = 20_000


class EmptyBatch(ServiceError):
    status_code, code = 422, "empty_batch"


class BatchTooSmall(ServiceError):
    status_code, code = 422, "batch_too_small"


class BatchTooLarge(ServiceError):
    status_code, code = 413, "batch_too_large"


class NoReference(ServiceError):
    status_code, code = 409, "no_reference"


def check_size(count: int) -> None:
    """`EmptyBatch` or `BatchTooLarge` unless `count` images can be checked."""
    if count == 0:
        raise EmptyBatch("the batch holds no images")
    if count > MAX_BATCH:
        raise BatchTooLarge(f"{count} images; a drift check takes at most {MAX_BATCH}")


def folder_files(folder: Path) -> list[Path]:
    """Every file below `folder`, hidden ones left out, in name order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def check_ids(
    ctx: ServiceContext, image_ids: Sequence[int], *, progress: Progress = no_progress
) -> BatchVerdict:
    """The verdict on registered images (their stored embeddings are reused)."""
    wanted = list(dict.fromkeys(image_ids))
    check_size(len(wanted))
    with ctx.sessions() as session:
        found = {i.id: i for i in session.scalars(select(Image).where(Image.id.in_(wanted)))}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound("some images are not registered", details={"missing": missing[:50]})
        new = embedded(session, ctx, Sample([found[i] for i in wanted]), scaled(progress, 0, 0.5))
        skipped = [
            SkippedFile(name=str(i), code="image_unusable", reason="could not be embedded")
            for i in wanted
            if i not in set(new.ids)
        ]
        return _verdict(ctx, session, new, skipped, progress=scaled(progress, 0.5, 1.0))


def check_files(
    ctx: ServiceContext,
    paths: Sequence[Path],
    names: Sequence[str],
    *,
    progress: Progress = no_progress,
) -> BatchVerdict:
    """The verdict on image files that are not registered (decoded and embedded here)."""
    check_size(len(paths))
    result = ctx.runtime.embed(
        list(paths), progress=lambda done, total: progress(0.5 * done / max(total, 1), "embedding")
    )
    skipped = [
        SkippedFile(name=names[f.index], code=f.code, reason=f.reason) for f in result.failures
    ]
    new = Embedded(
        vectors=np.asarray(result.embeddings, dtype=np.float32),
        ids=[None] * len(result.indices),
        names=[names[i] for i in result.indices],
        labeled=np.zeros(len(result.indices), dtype=bool),
    )
    with ctx.sessions() as session:
        return _verdict(ctx, session, new, skipped, progress=scaled(progress, 0.5, 1.0))


def _verdict(ctx, session, new: Embedded, skipped: list[SkippedFile], *, progress) -> BatchVerdict:  # noqa: ANN001
    guide = ctx.guide
    alpha = guide.thresholds.drift_significance
    if len(new.ids) < C.MIN_NEW:
        raise BatchTooSmall(
            f"{len(new.ids)} usable images; a drift check needs at least {C.MIN_NEW}",
            details={"skipped": [s.model_dump() for s in skipped]},
        )
    row, _ = reference_for(session, guide)
    session.commit()
    exclude = [i for i in new.ids if i is not None]
    ref = embedded(session, ctx, reference_sample(session, row, exclude=exclude), progress)
    if len(ref.ids) < C.MIN_REFERENCE:
        raise NoReference(
            f"the reference holds {len(ref.ids)} images; register at least {C.MIN_REFERENCE} "
            "images before checking batches"
        )
    image = C.images_check(
        ref.vectors, new.vectors, alpha=alpha, permutations=ctx.settings.quality.drift_permutations
    )
    results: list[tuple[str, DriftResult, dict[str, float]]] = [
        ("images", image, C.image_components(image))
    ]
    version, ref_probs, new_probs = probabilities(session, ctx, ref, new.vectors)
    if ref_probs is not None and new_probs is not None and len(ref_probs) >= C.MIN_REFERENCE:
        prediction = C.predictions_check(ref_probs, new_probs, alpha=alpha)
        results.append(("predictions", prediction, C.prediction_components(prediction)))
    checks = _holm(results, alpha)
    if version is None:
        checks.append(C.skipped("predictions", "no active model version"))
    elif len(results) == 1:
        checks.append(C.skipped("predictions", "too few unlabeled reference images"))
    verdict, reason = drift_verdict(checks)
    return BatchVerdict(
        passed=verdict == "passed",
        verdict=verdict,
        reason=reason,
        guide_name=guide.name,
        guide_version=str(guide.version),
        guide_fingerprint=guide.fingerprint(),
        model_version=version,
        alpha=alpha,
        reference_rule=describe_reference(row),
        reference_until=row.registered_until,
        false_alarm_control=(
            f"one decision per batch: Holm over the batch's {len(results)} checks at alpha = "
            f"{alpha:g} (the guide's drift significance); pipeline batches spend no alpha of "
            "the pool's drift reports"
        ),
        sample_sizes={
            "reference_images": len(ref.ids),
            "new_images": len(new.ids),
            "skipped_files": len(skipped),
        },
        checks=checks,
        novel_images=C.novel_images(image, ids=new.ids, names=new.names),
        skipped_files=skipped,
    )


def _holm(results: list[tuple[str, DriftResult, dict[str, float]]], alpha: float) -> list[CheckOut]:
    adjusted = holm([result.p_value for _, result, _ in results])
    checks = []
    for (kind, result, components), p in zip(results, adjusted, strict=True):
        held = replace(
            result,
            p_value=float(p),
            threshold=alpha,
            drifted=bool(p <= alpha),
            control=f"{result.control}; then holm over the batch's checks",
        )
        checks.append(C.check_out(kind, held, {**components, "unadjusted": result.p_value}))  # type: ignore[arg-type]
    return checks
