"""The post-training table shows the user's `targets`, not built-in ones: a goal column only when the
config sets goals, with the values it sets."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError
from rich.console import Console

from raipipe.posttrain.config import PostTrainConfig
from raipipe.posttrain.report import before_after_table


def rate(r: float, n: int = 100) -> dict:
    return {"rate": r, "low": r - 0.05, "high": r + 0.05, "n": n, "k": int(r * n)}


def summary(targets: dict) -> dict:
    base = {"name": "baseline", "violation": rate(0.6), "over_refusal": rate(0.1)}
    chosen = {"name": "checkpoint-9", "violation": rate(0.3), "over_refusal": rate(0.12)}
    config = PostTrainConfig.model_validate({"targets": targets}).model_dump(mode="json")
    return {"config": config, "selection": {"baseline": base, "candidates": [chosen], "chosen": "checkpoint-9",
                                            "context": {"judge": "j@1", "datasets": ["seed:test"]}}}


def render(table) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    return out.getvalue()


def test_goal_column_comes_from_the_config():
    text = render(before_after_table(summary({"violation_reduction": 0.4, "over_refusal_rise": 0.03,
                                              "wall_minutes": 45}), "t", wall_seconds=600))
    assert ">= 40% reduction" in text and "<= +3 points" in text and "<= 45 min" in text
    assert "+50% relative reduction" in text and "+2.0 points" in text
    plain = render(before_after_table(summary({}), "t", wall_seconds=600))
    assert "goal" not in plain and "reduction" in plain and "10.0 min" in plain


def test_targets_are_validated():
    with pytest.raises(ValidationError, match="violation_reduction"):
        PostTrainConfig.model_validate({"targets": {"violation_reduction": 50}})
