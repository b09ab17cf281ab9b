"""Report bars: a measured 0 % still shows as a bar (and a label), unlike a group with no data."""

from raipipe.evaluate.metrics import TwoSided
from raipipe.evaluate.stats import wilson
from raipipe.report.plots import MIN_VISIBLE, bar_heights, two_sided_bars


def _group(k_violate: int, n_harmful: int, k_over: int, n_benign: int) -> TwoSided:
    v, o = wilson(k_violate, n_harmful), wilson(k_over, n_benign)
    return TwoSided(violation=v, over_refusal=o, violation_worst_case=v, over_refusal_worst_case=o,
                    unscoreable_harmful=0, unscoreable_benign=0, verdicts={})


def test_zero_rate_is_drawn_but_missing_data_is_not():
    zero, half, empty = wilson(0, 20), wilson(10, 20), wilson(0, 0)
    assert empty.rate is None
    assert bar_heights([zero, half, empty]) == [MIN_VISIBLE, 0.5, 0.0]


def test_bars_render_with_zero_and_empty_groups():
    svg = two_sided_bars({"safety": _group(0, 20, 3, 20), "privacy": _group(5, 20, 0, 0)}, "By pillar")
    assert svg.startswith("<svg") and svg.count("<g id=\"patch_") >= 5  # background + 4 bars
