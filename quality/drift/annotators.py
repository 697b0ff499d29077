"""Annotator drift: each annotator's label distribution in a window against a comparison.

The comparison is ``reference_counts`` when given (for example the consensus labels of the
window, or the labels of the reference period), otherwise the labels of all other annotators
in the window (leave-one-out, so an annotator is never compared with itself). Each annotator
gets a chi-square homogeneity test; Sidak-Holm across annotators (:func:`sidak_holm`) keeps the
chance of flagging anyone by mistake at ``alpha`` for independent tests and at most
``-log(1 - alpha)`` whatever the dependence; the batch p-value, the smallest adjusted one, is
uniform under the null for independent tests (Holm's piles up at 1). Comparing with a consensus
the annotator took part in is conservative: their own labels pull the consensus towards them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quality.drift._checks import check_alpha, counts_vector
from quality.drift.combine import sidak_holm
from quality.drift.counts import homogeneity
from quality.drift.results import AnnotatorDriftResult, AnnotatorShift


def annotator_drift(
    labels: np.ndarray,
    annotators: Sequence[str] | np.ndarray,
    *,
    n_classes: int,
    reference_counts: np.ndarray | None = None,
    alpha: float = 0.05,
) -> AnnotatorDriftResult:
    """Test each annotator's labels ``(n,)`` (class indices), given who gave each ``(n,)``."""
    alpha = check_alpha(alpha)
    classes = np.asarray(labels)
    who = np.asarray([str(a) for a in annotators])
    if classes.ndim != 1 or classes.dtype.kind not in "iu" or who.shape != classes.shape:
        raise ValueError(
            f"expected integer labels (n,) and annotators (n,), got {classes.shape} and {who.shape}"
        )
    if classes.size == 0 or classes.min() < 0 or classes.max() >= n_classes:
        raise ValueError(f"expected a non-empty set of labels in [0, {n_classes})")
    names = sorted(set(who.tolist()))
    if reference_counts is None and len(names) < 2:
        raise ValueError("expected at least two annotators, or reference_counts to compare with")
    all_counts = np.bincount(classes, minlength=n_classes)
    if reference_counts is not None:
        reference_counts = counts_vector(
            reference_counts, name="reference_counts", length=n_classes
        )
    tests = []
    for name in names:
        own = np.bincount(classes[who == name], minlength=n_classes)
        other = all_counts - own if reference_counts is None else reference_counts
        tests.append((name, int(own.sum()), homogeneity(other, own)))
    adjusted = sidak_holm([test.p_value for _, _, test in tests])
    shifts = tuple(
        AnnotatorShift(
            annotator=name,
            n_labels=n,
            statistic=test.statistic,
            p_value=test.p_value,
            adjusted_p_value=float(adj),
            drifted=bool(adj <= alpha),
        )
        for (name, n, test), adj in zip(tests, adjusted, strict=True)
    )
    p_value = float(adjusted.min())
    return AnnotatorDriftResult(
        test="annotators",
        statistic=max(test.statistic for _, _, test in tests),
        p_value=p_value,
        threshold=alpha,
        drifted=p_value <= alpha,
        n_reference=int(all_counts.sum() if reference_counts is None else reference_counts.sum()),
        n_new=int(classes.size),
        control=f"sidak-holm over {len(names)} annotators (family-wise error <= alpha if "
        "independent, <= -log(1 - alpha) for any dependence)",
        annotators=shifts,
    )
