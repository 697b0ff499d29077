"""Running a window's checks and holding each to the level of its alpha-spending sequence.

Reads only: the sequences are read as plain values and `Judged.spending` says where each
spent one moved to; `Spending.save` writes that with the report, in one unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from quality.drift import AlphaSpending, DriftResult
from service.context import ServiceContext
from service.core.progress import Progress, no_progress
from service.quality.drift import checks as C
from service.quality.drift.gather import Gathered
from service.quality.drift.schemas import (
    AnnotatorShiftOut,
    CheckKind,
    CheckOut,
    LabelCounts,
    NovelImage,
    Projection,
)
from service.quality.drift.spending import read_policy, save_spending, spend
from service.quality.schemas import DecisionOut

CONTROL = (
    "Each kind of check (images, predictions, labels, annotators) keeps its own alpha-spending "
    "sequence under this guide version, stored between runs: check t of a kind is held to "
    "alpha / H (alpha = the guide's drift significance {alpha:g}, H = {horizon} checks), so "
    "over all of them the chance of any false alarm of that kind is at most alpha. Within a "
    "check: images combine MMD (permutation test), a KS screen (Benjamini-Hochberg over "
    "principal components) and novelty by weighted Sidak-Holm (novelty 0.5, MMD 0.3, KS 0.2); "
    "predictions combine predicted classes and "
    "confidences by Sidak-Holm; annotators are compared with everyone else in the window, "
    "Sidak-Holm over "
    "annotators. Novel images are listed by Benjamini-Hochberg at false discovery rate alpha."
)


@dataclass
class Spending:
    """Where the sequences a report used stood when read (`before`) and after it (`after`)."""

    fingerprint: str
    before: dict[str, AlphaSpending] = field(default_factory=dict)
    after: dict[str, AlphaSpending] = field(default_factory=dict)

    def save(self, session: Session) -> None:
        """Write every spent sequence's move (flush only; in the report's write unit)."""
        for check, after in self.after.items():
            save_spending(session, self.fingerprint, check, self.before[check], after)


@dataclass
class Judged:
    spending: Spending
    checks: list[CheckOut] = field(default_factory=list)
    novel_images: list[NovelImage] = field(default_factory=list)
    label_counts: LabelCounts | None = None
    annotators: list[AnnotatorShiftOut] = field(default_factory=list)
    projection: Projection | None = None
    decisions: list[DecisionOut] = field(default_factory=list)
    sample_sizes: dict[str, int] = field(default_factory=dict)
    model_version: str | None = None
    control: str = ""


class Spender:
    """Reads a check kind's sequence, and spends one check of it on a result (in memory)."""

    def __init__(self, session: Session, ctx: ServiceContext) -> None:
        self.session = session
        self.alpha = ctx.guide.thresholds.drift_significance
        self.horizon = ctx.settings.quality.drift_max_checks
        self.spending = Spending(ctx.guide.fingerprint())

    def next_level(self, check: CheckKind) -> float:
        return self._policy(check).next_level

    def judge(
        self, check: CheckKind, result: DriftResult, components: dict[str, float]
    ) -> CheckOut:
        if check in self.spending.after:
            raise ValueError(f"the {check} sequence was already spent by this report")
        judged, after = spend(self._policy(check), result)
        self.spending.after[check] = after
        out = C.check_out(check, judged, components)
        out.sequence_check = after.checks
        return out

    def _policy(self, check: CheckKind) -> AlphaSpending:
        before = self.spending.before
        if check not in before:
            before[check] = read_policy(
                self.session,
                self.spending.fingerprint,
                check,
                alpha=self.alpha,
                horizon=self.horizon,
            )
        return before[check]


def judge_all(
    session: Session, ctx: ServiceContext, data: Gathered, *, progress: Progress = no_progress
) -> Judged:
    """Every check that has data, each held to its sequence's next level."""
    spender = Spender(session, ctx)
    out = Judged(spender.spending, model_version=data.model_version)
    out.control = CONTROL.format(alpha=spender.alpha, horizon=spender.horizon)
    _images(out, data, spender, ctx.settings.quality.drift_permutations)
    progress(0.6, "images checked")
    _predictions(out, data, spender)
    _labels(out, data, spender, ctx)
    _annotators(out, data, spender, len(ctx.guide.labels))
    out.decisions = [decision(c) for c in out.checks if c.status == "ran"] + [
        DecisionOut(
            scope="annotator",
            subject=a.annotator,
            check="label_distribution_drift",
            verdict="fail" if a.drifted else "pass",
            value=a.adjusted_p_value,
            threshold=_level(out, "annotators"),
            sample_size=a.n_labels,
        )
        for a in out.annotators
    ]
    out.sample_sizes = {
        "reference_images": len(data.reference.ids),
        "new_images": len(data.new.ids),
        "reference_predictions": 0 if data.reference_probs is None else len(data.reference_probs),
        "labels": len(data.labels),
        "annotator_answers": len(data.answer_annotators),
        "novel_images": len(out.novel_images),
    }
    return out


def decision(check: CheckOut) -> DecisionOut:
    return DecisionOut(
        scope="batch",
        subject=f"drift:{check.check}",
        check=f"{check.check}_drift_p_value",
        verdict="fail" if check.drifted else "pass",
        value=check.p_value,
        threshold=check.level or 0.0,
        sample_size=check.n_new,
    )


def _level(out: Judged, check: str) -> float:
    return next((c.level or 0.0 for c in out.checks if c.check == check), 0.0)


def _images(out: Judged, data: Gathered, spender: Spender, configured: int) -> None:
    ref, new = data.reference, data.new
    sizes = {"n_reference": len(ref.ids), "n_new": len(new.ids)}
    if len(ref.ids) < C.MIN_REFERENCE or len(new.ids) < C.MIN_NEW:
        reason = f"needs >= {C.MIN_REFERENCE} reference and >= {C.MIN_NEW} new images"
        out.checks.append(C.skipped("images", reason, **sizes))
        return
    permutations = C.permutations_for(spender.next_level("images"), configured)
    result = C.images_check(
        ref.vectors, new.vectors, alpha=spender.alpha, permutations=permutations
    )
    out.checks.append(spender.judge("images", result, C.image_components(result)))
    out.novel_images = C.novel_images(result, ids=new.ids, names=new.names)
    out.projection = C.projection(ref.vectors, new.vectors)


def _predictions(out: Judged, data: Gathered, spender: Spender) -> None:
    ref, new = data.reference_probs, data.new_probs
    if data.model_version is None:
        out.checks.append(C.skipped("predictions", "no active model version"))
        return
    if ref is None or new is None or len(ref) < C.MIN_REFERENCE or len(new) < C.MIN_NEW:
        reason = f"needs >= {C.MIN_REFERENCE} unlabeled reference and >= {C.MIN_NEW} new images"
        out.checks.append(C.skipped("predictions", reason))
        return
    result = C.predictions_check(ref, new, alpha=spender.alpha)
    out.checks.append(spender.judge("predictions", result, C.prediction_components(result)))


def _labels(out: Judged, data: Gathered, spender: Spender, ctx: ServiceContext) -> None:
    if ctx.guide.prior_vector() is None:
        out.checks.append(C.skipped("labels", "the guide has no class priors"))
        return
    if len(data.labels) < C.MIN_LABELS:
        reason = f"{len(data.labels)} labels confirmed in the window; needs >= {C.MIN_LABELS}"
        out.checks.append(C.skipped("labels", reason, n_new=len(data.labels)))
        return
    result, out.label_counts = C.labels_check(data.labels, ctx.guide)
    out.checks.append(spender.judge("labels", result, {}))


def _annotators(out: Judged, data: Gathered, spender: Spender, n_classes: int) -> None:
    people = set(data.answer_annotators)
    if len(people) < 2 or len(data.answer_annotators) < C.MIN_LABELS:
        reason = (
            f"{len(people)} annotators, {len(data.answer_annotators)} answers in the window; "
            f"needs >= 2 annotators and >= {C.MIN_LABELS} answers"
        )
        out.checks.append(C.skipped("annotators", reason))
        return
    result, rows = C.annotators_check(
        data.answer_labels, data.answer_annotators, n_classes=n_classes, alpha=spender.alpha
    )
    check = spender.judge("annotators", result, {})
    for row in rows:  # each annotator held to the level the check was held to
        row.drifted = row.adjusted_p_value is not None and row.adjusted_p_value <= (
            check.level or 0
        )
    out.checks.append(check)
    out.annotators = rows
