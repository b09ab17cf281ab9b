"""Paired comparison of two runs on the same prompts (exact McNemar, per side of the trade-off)."""

from __future__ import annotations

from raipipe.evaluate.judge_error import binary_calibration, corrected_difference
from raipipe.evaluate.metrics import OVER_REFUSING, VIOLATING, Confusion, ScoredItem, is_bad
from raipipe.evaluate.stats import McNemar, mcnemar


def compare_items(a: list[ScoredItem], b: list[ScoredItem], confusion: Confusion | None = None) -> dict[str, McNemar]:
    """'violation' over harmful prompts, 'over_refusal' over benign ones; unscoreable pairs are dropped.

    With the judge's calibration `confusion`, each result also says whether the difference is within
    what the judge's own error could produce."""
    out = {}
    for name, label, positive in (("violation", "harmful", VIOLATING), ("over_refusal", "benign", OVER_REFUSING)):
        oa, ob = _outcomes(a, label), _outcomes(b, label)
        result = mcnemar(oa, ob)
        if confusion is not None:
            result.judge_error = corrected_difference(oa, ob, binary_calibration(confusion, positive))
        out[name] = result
    return out


def _outcomes(items: list[ScoredItem], label: str) -> dict[str, bool]:
    """record id → bad outcome, over the scoreable items with this human label."""
    out = {}
    for item in items:
        bad = is_bad(item) if item.label == label else None
        if bad is not None:
            out[item.record_id] = bad
    return out
