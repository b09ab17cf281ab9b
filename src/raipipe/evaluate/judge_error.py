"""Rates that carry the judge's own error.

A judge that misses 1 refusal in 10 turns a true 20 % over-refusal into a different observed rate.
Given the judge's calibration against human labels (sensitivity and specificity for the outcome being
counted), the Rogan–Gladen estimator undoes that bias:

    p_true = (p_observed + specificity - 1) / (sensitivity + specificity - 1)

Its interval comes from a parametric bootstrap over both sources of uncertainty: the evaluated items
(how many were observed bad) and the calibration set (how well the judge was measured). With a
perfect judge it collapses to an ordinary binomial interval; with a judge measured on few labels it
widens, as it should. Paired differences use the same calibration draw for both runs (same judge)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from pydantic import BaseModel

UNSCOREABLE = "unscoreable"
BOOTSTRAP = 4000


class BinaryCalibration(BaseModel):
    """The judge's accuracy for one binary outcome, from a human-labelled calibration set."""

    positive: list[str]
    true_positive: int
    positives: int
    true_negative: int
    negatives: int

    @property
    def sensitivity(self) -> float | None:
        return self.true_positive / self.positives if self.positives else None

    @property
    def specificity(self) -> float | None:
        return self.true_negative / self.negatives if self.negatives else None


def binary_calibration(confusion: Mapping[str, Mapping[str, int]], positive: Iterable[str]) -> BinaryCalibration:
    """Collapse a human-label → judge-verdict confusion matrix onto 'positive' vs the rest.

    Rows or columns that are unscoreable are left out: rates exclude unscoreable items too."""
    pos = set(positive)
    tp = fn = tn = fp = 0
    for human, row in confusion.items():
        if human == UNSCOREABLE:
            continue
        for judged, count in row.items():
            if judged == UNSCOREABLE:
                continue
            if human in pos:
                tp, fn = (tp + count, fn) if judged in pos else (tp, fn + count)
            else:
                fp, tn = (fp + count, tn) if judged in pos else (fp, tn + count)
    return BinaryCalibration(positive=sorted(pos), true_positive=tp, positives=tp + fn, true_negative=tn,
                             negatives=tn + fp)


class CorrectedRate(BaseModel):
    """A misclassification-corrected rate with a bootstrap interval over items and calibration."""

    observed: float | None
    estimate: float | None
    low: float | None
    high: float | None
    n: int
    sensitivity: float | None
    specificity: float | None
    n_calibration: int
    identifiable: bool
    confidence: float = 0.95

    def fmt(self) -> str:
        if self.estimate is None:
            return "n/a (judge error unknown)" if not self.identifiable else f"n/a (n={self.n})"
        return f"{self.estimate:.1%} [{self.low:.1%}, {self.high:.1%}]"


def _rogan_gladen(p_obs: np.ndarray, sens: np.ndarray, spec: np.ndarray) -> np.ndarray:
    denom = sens + spec - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        est = (p_obs + spec - 1.0) / denom
    est = np.where(denom > 0, np.clip(est, 0.0, 1.0), np.nan)
    return est


def _calibration_draws(cal: BinaryCalibration, sens: float, spec: float, rng: np.random.Generator,
                       size: int) -> tuple[np.ndarray, np.ndarray]:
    sens_draw = rng.binomial(cal.positives, sens, size) / cal.positives
    spec_draw = rng.binomial(cal.negatives, spec, size) / cal.negatives
    return sens_draw, spec_draw


def _interval(draws: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = draws[np.isfinite(draws)]
    if finite.size < 0.5 * draws.size:
        return None, None
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def corrected_rate(k: int, n: int, cal: BinaryCalibration | None, confidence: float = 0.95,
                   bootstrap: int = BOOTSTRAP, seed: int = 0) -> CorrectedRate:
    """Rogan–Gladen estimate of the true rate behind k judged-positive of n, with its interval."""
    sens = cal.sensitivity if cal else None
    spec = cal.specificity if cal else None
    identifiable = sens is not None and spec is not None and sens + spec > 1
    unestimated = CorrectedRate(observed=k / n if n else None, estimate=None, low=None, high=None, n=n,
                                sensitivity=sens, specificity=spec,
                                n_calibration=(cal.positives + cal.negatives) if cal else 0,
                                identifiable=identifiable, confidence=confidence)
    if not n or not identifiable or cal is None or sens is None or spec is None:
        return unestimated
    rng = np.random.default_rng(seed)
    p_obs = rng.binomial(n, k / n, bootstrap) / n
    s_draw, c_draw = _calibration_draws(cal, sens, spec, rng, bootstrap)
    low, high = _interval(_rogan_gladen(p_obs, s_draw, c_draw), confidence)
    point = float(_rogan_gladen(np.array(k / n), np.array(sens), np.array(spec)))
    if low is not None and high is not None:
        low, high = min(low, point), max(high, point)
    return unestimated.model_copy(update={"estimate": point, "low": low, "high": high})


class CorrectedDifference(BaseModel):
    """B − A on paired items, corrected for the (shared) judge's error."""

    observed: float | None
    estimate: float | None
    low: float | None
    high: float | None
    n_pairs: int
    within_judge_error: bool | None  # the corrected interval includes 0

    def fmt(self) -> str:
        if self.estimate is None:
            return "n/a"
        return f"{self.estimate:+.1%} [{self.low:+.1%}, {self.high:+.1%}]"


def corrected_difference(outcomes_a: Mapping[str, bool], outcomes_b: Mapping[str, bool],
                         cal: BinaryCalibration | None, confidence: float = 0.95, bootstrap: int = BOOTSTRAP,
                         seed: int = 0) -> CorrectedDifference:
    """Paired bootstrap of the corrected difference: items resampled as pairs, one calibration draw
    shared by both runs because the same judge scored both."""
    shared = sorted(set(outcomes_a) & set(outcomes_b))
    n = len(shared)
    sens = cal.sensitivity if cal else None
    spec = cal.specificity if cal else None
    if not n or cal is None or sens is None or spec is None or sens + spec <= 1:
        observed = (sum(outcomes_b[i] for i in shared) - sum(outcomes_a[i] for i in shared)) / n if n else None
        return CorrectedDifference(observed=observed, estimate=None, low=None, high=None, n_pairs=n,
                                   within_judge_error=None)
    a = np.array([outcomes_a[i] for i in shared], dtype=float)
    b = np.array([outcomes_b[i] for i in shared], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(bootstrap, n))
    s_draw, c_draw = _calibration_draws(cal, sens, spec, rng, bootstrap)
    diffs = _rogan_gladen(b[idx].mean(1), s_draw, c_draw) - _rogan_gladen(a[idx].mean(1), s_draw, c_draw)
    low, high = _interval(diffs, confidence)
    point = float(_rogan_gladen(np.array(b.mean()), np.array(sens), np.array(spec))
                  - _rogan_gladen(np.array(a.mean()), np.array(sens), np.array(spec)))
    within = None if low is None or high is None else bool(low <= 0 <= high)
    return CorrectedDifference(observed=float(b.mean() - a.mean()), estimate=point, low=low, high=high, n_pairs=n,
                               within_judge_error=within)
