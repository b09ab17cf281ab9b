"""Judge-error-aware rates: the Rogan–Gladen correction and its bootstrap over items and calibration."""

import numpy as np
import pytest

from raipipe.evaluate.judge_error import (
    BinaryCalibration,
    binary_calibration,
    corrected_difference,
    corrected_rate,
)
from raipipe.evaluate.metrics import ScoredItem, summarise
from raipipe.evaluate.stats import wilson


def cal(sens: float, spec: float, n: int = 400) -> BinaryCalibration:
    pos = neg = n // 2
    return BinaryCalibration(positive=["comply"], true_positive=round(sens * pos), positives=pos,
                             true_negative=round(spec * neg), negatives=neg)


def test_collapses_a_confusion_matrix_without_unscoreable():
    confusion = {"comply": {"comply": 80, "refuse": 15, "partial": 5, "unscoreable": 3},
                 "refuse": {"comply": 10, "refuse": 85, "partial": 5, "unscoreable": 0},
                 "partial": {"comply": 4, "refuse": 6, "partial": 10, "unscoreable": 0},
                 "unscoreable": {"comply": 2, "refuse": 0, "partial": 0, "unscoreable": 9}}
    b = binary_calibration(confusion, {"comply", "partial"})
    assert (b.true_positive, b.positives) == (80 + 5 + 4 + 10, 100 + 20)
    assert (b.true_negative, b.negatives) == (85, 100)


def test_undoes_a_known_misclassification():
    # true rate 0.30, judge sensitivity 0.8, specificity 0.9 -> observed 0.31
    r = corrected_rate(310, 1000, cal(0.8, 0.9, n=2000))
    assert r.observed == pytest.approx(0.31)
    assert r.estimate == pytest.approx(0.30, abs=1e-9)
    assert r.low < 0.30 < r.high


def test_a_perfect_judge_changes_nothing_and_matches_wilson_width():
    r = corrected_rate(40, 200, cal(1.0, 1.0, n=1000))
    w = wilson(40, 200)
    assert r.estimate == pytest.approx(0.2)
    assert abs((r.high - r.low) - (w.high - w.low)) < 0.02


def test_a_judge_measured_on_few_labels_widens_the_interval():
    wide = corrected_rate(60, 300, cal(0.9, 0.9, n=40))
    narrow = corrected_rate(60, 300, cal(0.9, 0.9, n=4000))
    assert (wide.high - wide.low) > (narrow.high - narrow.low) * 1.3


def test_a_judge_no_better_than_chance_gives_no_estimate():
    r = corrected_rate(50, 100, cal(0.5, 0.5))
    assert not r.identifiable and r.estimate is None and "judge error" in r.fmt()
    assert corrected_rate(5, 10, None).estimate is None


def test_interval_covers_the_truth_in_simulation():
    """Simulate the whole measurement: calibrate an imperfect judge on labels, judge items, correct."""
    rng = np.random.default_rng(7)
    true_rate, sens, spec, covered = 0.25, 0.85, 0.92, 0
    reps = 150
    for rep in range(reps):
        c = BinaryCalibration(positive=["x"], true_positive=int(rng.binomial(150, sens)), positives=150,
                              true_negative=int(rng.binomial(150, spec)), negatives=150)
        truth = rng.random(300) < true_rate
        judged = np.where(truth, rng.random(300) < sens, rng.random(300) > spec)
        r = corrected_rate(int(judged.sum()), 300, c, bootstrap=1500, seed=rep)
        covered += r.low <= true_rate <= r.high
    assert covered / reps >= 0.9


def test_paired_difference_within_and_beyond_judge_error():
    ids = [str(i) for i in range(200)]
    a = {i: k % 2 == 0 for k, i in enumerate(ids)}
    same = corrected_difference(a, dict(a), cal(0.9, 0.9))
    assert same.estimate == pytest.approx(0.0) and same.within_judge_error is True
    b = {i: k % 10 == 0 for k, i in enumerate(ids)}  # 50 % -> 10 %
    diff = corrected_difference(a, b, cal(0.9, 0.9))
    assert diff.estimate == pytest.approx((0.1 - 0.1) / 0.8 - (0.5 - 0.1) / 0.8)
    assert diff.within_judge_error is False and diff.high < 0
    small = {i: (k % 2 == 0) if k > 6 else not (k % 2 == 0) for k, i in enumerate(ids)}  # a handful flipped
    assert corrected_difference(a, small, cal(0.75, 0.75, n=60)).within_judge_error is True


def test_summaries_carry_corrected_rates_per_group():
    items = [ScoredItem(record_id=str(i), label="harmful" if i % 2 else "benign", pillar="safety" if i < 40
                        else "fairness", language="en", verdict="comply" if i % 3 else "refuse") for i in range(80)]
    confusion = {"comply": {"comply": 90, "refuse": 10, "partial": 0, "unscoreable": 0},
                 "refuse": {"comply": 5, "refuse": 95, "partial": 0, "unscoreable": 0},
                 "partial": {"comply": 0, "refuse": 0, "partial": 0, "unscoreable": 0},
                 "unscoreable": {"comply": 0, "refuse": 0, "partial": 0, "unscoreable": 0}}
    m = summarise(items, confusion)
    assert m.overall.violation_corrected is not None and m.overall.violation_corrected.estimate is not None
    assert m.by_pillar["safety"].over_refusal_corrected.n == m.by_pillar["safety"].over_refusal.n
    assert summarise(items).overall.violation_corrected is None  # no calibration: nothing invented
