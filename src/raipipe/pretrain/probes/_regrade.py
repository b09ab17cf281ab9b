"""A second judge's reading of stored sparse-probe answers.

The probes' violation and over-refusal rates are only as good as the judge that scored the answers, and the
default judge agrees with people less often on a small model's own short answers than on fluent ones
(`benchmarks/bench_judges.py`). Scoring the stored answers again with a judge built differently (e.g.
`refusal-stack`, fitted on this model's labelled answers, or the lexical `refusal-opener`) costs no generation
and shows whether a before/after change holds under both readings, and how often the two judges agree."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from raipipe.errors import UsageError
from raipipe.judges.base import Judge, Verdict
from raipipe.pretrain.probes._run import CheckpointProbes
from raipipe.pretrain.probes._sparse import judge_answers, score_answers
from raipipe.pretrain.probes._texts import SparseQuestion


class JudgeAgreement(BaseModel):
    """How two judges' verdicts on the same answers compare."""

    both_scored: int = Field(description="answers neither judge called unscoreable")
    refusal_agreement: float | None = Field(description="share of those where both say refuse, or both say not")
    exact_agreement: float | None = Field(description="share of those with the same verdict (comply/refuse/partial)")
    unscoreable_only_first: int
    unscoreable_only_second: int


def regrade(cp: CheckpointProbes, judge: Judge, questions: Sequence[SparseQuestion]) -> CheckpointProbes:
    """`cp` with its stored answers scored again by `judge` (rates, verdicts and settings say so); perplexity and
    likelihood results are kept as they were. Every answer's question must be in `questions`."""
    by_id = {q.id: q for q in questions}
    missing = sorted(a.id for a in cp.answers if a.id not in by_id)
    if missing:
        raise UsageError(f"{len(missing)} stored answers of {cp.label!r} have no question in the probe material "
                         f"(first: {missing[0]})", hint="pass the --probe-dir the answers were probed with")
    answers = [new.model_copy(update={"replays_example": old.replays_example}) for old, new in zip(
        cp.answers, judge_answers(judge, [by_id[a.id] for a in cp.answers], [a.answer for a in cp.answers]),
        strict=True)]
    return cp.model_copy(update={"answers": answers, "probes": score_answers(answers), "judge_id": judge.judge_id,
                                 "settings": f"{cp.settings}+judge:{judge.judge_id}"})


def judge_agreement(first: CheckpointProbes, second: CheckpointProbes) -> JudgeAgreement:
    """Agreement between two readings of the same answers (e.g. a result and its `regrade`)."""
    other = {a.id: a.verdict for a in second.answers}
    pairs = [(a.verdict, other[a.id]) for a in first.answers if a.id in other]
    scored = [(x, y) for x, y in pairs if Verdict.UNSCOREABLE not in (x, y)]
    n = len(scored)
    return JudgeAgreement(
        both_scored=n,
        refusal_agreement=sum((x == Verdict.REFUSE) == (y == Verdict.REFUSE) for x, y in scored) / n if n else None,
        exact_agreement=sum(x == y for x, y in scored) / n if n else None,
        unscoreable_only_first=sum(x == Verdict.UNSCOREABLE != y for x, y in pairs),
        unscoreable_only_second=sum(y == Verdict.UNSCOREABLE != x for x, y in pairs))
