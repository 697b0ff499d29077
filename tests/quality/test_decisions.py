"""Pass/fail decisions from the guide's thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from guides.schema import QualityThresholds
from quality.annotators import gold_accuracy, suggestion_acceptance
from quality.decisions import (
    Verdict,
    decide_annotators,
    decide_batch_agreement,
    decide_model_agreement,
    decide_rate,
    decide_tasks,
    task_agreement,
)
from quality.ratings import MISSING

THRESHOLDS = QualityThresholds(min_agreement=0.6, min_gold_accuracy=0.8, min_model_agreement=0.5)


def test_careless_annotator_fails_on_gold_and_small_samples_stay_undecided() -> None:
    truth = load_digits().target[:40]
    rng = np.random.default_rng(0)
    careful = truth.copy()
    careless = np.where(rng.random(40) < 0.8, (truth + 1) % 10, truth)
    newcomer = np.full(40, MISSING)
    newcomer[:2] = [truth[0], (truth[1] + 1) % 10]  # 1 of 2 gold answers right
    ratings = np.stack([careful, careless, newcomer], axis=1)
    gold = np.full(40, MISSING)
    gold[:10] = truth[:10]
    decisions = decide_annotators(gold_accuracy(ratings, gold, 10), THRESHOLDS)
    assert [d.verdict for d in decisions] == [Verdict.PASS, Verdict.FAIL, Verdict.UNDECIDED]
    careless_decision = decisions[1]
    assert careless_decision.sample_size == 10 and careless_decision.upper < 0.8
    assert careless_decision.check == "gold_accuracy" and careless_decision.threshold == 0.8


def test_wilson_bounds_decide_rates() -> None:
    fail = decide_rate(1, 5, 0.8, scope="annotator", subject=3, check="gold_accuracy")
    assert fail.verdict is Verdict.FAIL and fail.upper == pytest.approx(0.6245, abs=1e-4)
    assert decide_rate(4, 5, 0.8, scope="annotator", subject=3, check="gold_accuracy").verdict == (
        Verdict.PASS
    )
    assert decide_rate(0, 0, 0.8, scope="annotator", subject=3, check="gold_accuracy").verdict == (
        Verdict.UNDECIDED
    )
    with pytest.raises(ValueError, match="successes <= trials"):
        decide_rate(3, 2, 0.8, scope="annotator", subject=0, check="gold_accuracy")


def test_tasks_need_two_agreeing_ratings() -> None:
    ratings = np.array([[0, 0], [0, 1], [2, MISSING], [1, 1]])
    values = task_agreement(ratings, 3)
    expected = (np.array([3, 3, 0]) / 6) @ (np.array([3, 3, 0]) / 6)  # pairable shares
    np.testing.assert_allclose(values[[0, 1, 3]], [1.0, -expected / (1 - expected), 1.0])
    assert math.isnan(values[2])
    verdicts = [d.verdict for d in decide_tasks(ratings, 3, THRESHOLDS)]
    assert verdicts == [Verdict.PASS, Verdict.FAIL, Verdict.UNDECIDED, Verdict.PASS]
    assert decide_tasks(ratings, 3, THRESHOLDS)[1].sample_size == 2


def test_batch_agreement_and_model_agreement() -> None:
    truth = load_digits().target[:60]
    ratings = np.stack([truth, truth, np.where(np.arange(60) % 5 == 0, (truth + 3) % 10, truth)], 1)
    good = decide_batch_agreement(ratings, 10, THRESHOLDS, batch="round-1")
    assert good.verdict is Verdict.PASS and good.sample_size == 60 and good.value > 0.8
    small = decide_batch_agreement(ratings[:5], 10, THRESHOLDS, batch="round-1")
    assert small.verdict is Verdict.UNDECIDED
    shown = (truth + (np.arange(60) % 3 != 0)) % 10  # the model is right on a third
    acceptance = suggestion_acceptance(truth, shown, ["h-1"] * 60, 10)
    model = decide_model_agreement(acceptance, THRESHOLDS, batch="round-1")
    assert model.verdict is Verdict.FAIL and model.value == pytest.approx(1 / 3)
    assert model.sample_size == 60 and model.upper < 0.5
