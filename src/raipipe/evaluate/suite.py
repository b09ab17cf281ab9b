"""One model over a suite of datasets, judged and reduced to two-sided metrics.

Post-training selection and confirmation, and anything else that compares models, measure each model
the same way: an `EvalRun` (resumable, responses cached in the store) scored by one judge that drives
the numbers, optionally a second judge on the same answers, reduced to violation and over-refusal
rates with intervals. Which model to keep is the caller's policy, not this module's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from raipipe.evaluate.config import EvalConfig
from raipipe.evaluate.metrics import TwoSided, grouped, two_sided
from raipipe.evaluate.stats import Rate
from raipipe.judges.base import load_judge
from raipipe.models import load_model

# Greedy evaluation batches (prompts): on 2 cores 64 ran 192 seed prompts at 48 tokens in 61 s vs 70 s at 32 and
# 92 s at 16, with the same answers; sampling k answers per prompt gained nothing from it, so the backend keeps 32.
EVAL_BATCH_SIZE = 64


class ModelMetrics(BaseModel):
    """One evaluated model (a baseline or a checkpoint), with both sides' rates, intervals and n."""

    name: str
    step: int | None = None
    model: str = ""
    run_id: str | None = None
    n: int
    violation: Rate
    over_refusal: Rate
    violation_worst_case: Rate
    over_refusal_worst_case: Rate
    unscoreable_harmful: int = 0
    unscoreable_benign: int = 0
    # scoreable-only over-refusal per prompt language: a pooled rate hides a language whose benign answers moved
    # from unscoreable (outside the rate) to refused
    over_refusal_by_language: dict[str, Rate] = {}

    @classmethod
    def from_two_sided(cls, name: str, ts: TwoSided, n: int, step: int | None = None, model: str = "",
                       run_id: str | None = None, by_language: dict[str, TwoSided] | None = None) -> ModelMetrics:
        return cls(name=name, step=step, model=model, run_id=run_id, n=n, violation=ts.violation,
                   over_refusal=ts.over_refusal, violation_worst_case=ts.violation_worst_case,
                   over_refusal_worst_case=ts.over_refusal_worst_case,
                   unscoreable_harmful=ts.unscoreable_harmful, unscoreable_benign=ts.unscoreable_benign,
                   over_refusal_by_language={k: v.over_refusal for k, v in (by_language or {}).items()})

    def rates(self, worst_case: bool) -> tuple[Rate, Rate]:
        return ((self.violation_worst_case, self.over_refusal_worst_case) if worst_case
                else (self.violation, self.over_refusal))


def evaluate_model(name: str, model, spec: str, datasets: Sequence[str], step: int | None = None,
                   judge=None, stage: str = "select", second_judge=None, **config: Any) -> ModelMetrics:
    """Run the EvalRun machinery for one loaded model (resumable, cached in the store) and reduce to two sides.

    The store run is named `STAGE:NAME`, so runs of one model at different stages stay apart.
    `judge` drives the metrics; a `second_judge` scores the same answers so reports can show how far
    the two agree. `config` goes to EvalConfig (store, params, limit, seed, policy_pack, scaffolding)."""
    from raipipe.evaluate.runner import EvalRun  # lazy: the runner brings SQLAlchemy and the store

    judge = judge or load_judge("refusal-stack")
    judges = [judge] + ([second_judge] if second_judge is not None and second_judge.name != judge.name else [])
    cfg = EvalConfig(model=spec, datasets=list(datasets), judges=[j.name for j in judges], name=f"{stage}:{name}",
                     **config)
    run = EvalRun(cfg, model=model, judges=judges)
    run_id = run.execute()
    items = run.items(judge.judge_id)
    return ModelMetrics.from_two_sided(name, two_sided(items), n=len(items), step=step, model=spec, run_id=run_id,
                                       by_language=grouped(items, "language"))


def evaluate_spec(name: str, spec: str, datasets: Sequence[str], judge, batch_size: int = EVAL_BATCH_SIZE,
                  step: int | None = None, **eval_config: Any) -> ModelMetrics:
    """Load a model from its spec (e.g. a baseline), evaluate it and release it."""
    chat = load_model(spec, batch_size=batch_size)
    try:
        return evaluate_model(name, chat, spec, datasets, step=step, judge=judge, **eval_config)
    finally:
        chat.close()
