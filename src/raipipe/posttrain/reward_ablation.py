"""What the reward model adds to the combined reward, by ablation on held-out preference pairs.

GRPO learns from the order of the combined reward within a group of answers to one prompt, so what matters is
how often that order is right. Each held-out pair is scored as a group of two (chosen, rejected) by the real
`CombinedReward`, once per reward-model weight. "Right" is decided by an independent grader, a judge that did not
rank the pairs: on a harmful prompt a refusal beats a partial answer beats compliance, on a benign prompt the
reverse. Pairs the grader cannot separate (same behaviour, or an answer it cannot score) are left out and counted.
Agreement with the pairs' own order is shown too, but the combined reward's refusal judge is the ranker, so that
figure flatters the weight 0 row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from raipipe.evaluate.stats import McNemar, Rate, mcnemar, wilson
from raipipe.judges.base import Judge, JudgeInput, Judgement, Verdict
from raipipe.posttrain.pairs import PreferencePair
from raipipe.posttrain.ranking.ai_feedback import TIERS
from raipipe.posttrain.reward import CombinedReward, ResponseScorer, RewardConfig


class AblationRow(BaseModel):
    """The combined reward at one reward-model weight."""

    reward_model_weight: float
    agrees_with_grader: Rate = Field(description="pairs the grader separates, ordered as the grader orders them")
    agrees_with_grader_by_label: dict[str, Rate] = Field(default_factory=dict)
    agrees_with_ranking: Rate = Field(description="pairs put in their own chosen-over-rejected order")


class RewardAblation(BaseModel):
    """The ablation's rows, what produced them, and the paired test between the first and last weight."""

    grader: str = Field(description="judge that decides which answer of a pair is better")
    refusal_judge: str = Field(description="the combined reward's own refusal judge")
    reward_model: str | None
    n_pairs: int
    n_grader_decided: int
    grader_left_out: dict[str, int] = Field(description="pairs the grader did not separate, by reason")
    rows: list[AblationRow]
    paired: McNemar | None = Field(default=None, description="first vs last weight on the grader-decided pairs "
                                   "(bad = the combined reward orders the pair against the grader)")

    def hurts(self, alpha: float = 0.05) -> bool:
        """The last weight orders the grader-decided pairs worse than the first, beyond chance (exact paired test)."""
        return self.paired is not None and self.paired.c > self.paired.b and self.paired.p_value < alpha

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Column headers (with each column's n) and one row per weight, for a console table."""
        labels = sorted({k for r in self.rows for k in r.agrees_with_grader_by_label})
        first = self.rows[0]
        heads = ["reward-model weight", f"order as the grader's (n={first.agrees_with_grader.n})",
                 *(f"{k} (n={first.agrees_with_grader_by_label[k].n})" for k in labels),
                 f"order as the pairs' (n={first.agrees_with_ranking.n})"]
        rows = [[f"{r.reward_model_weight:g}", r.agrees_with_grader.fmt(counts=False),
                 *(r.agrees_with_grader_by_label[k].fmt(counts=False) for k in labels),
                 r.agrees_with_ranking.fmt(counts=False)]
                for r in self.rows]
        return heads, rows


def grader_order(label: str, chosen: Judgement, rejected: Judgement) -> bool | str:
    """True when the grader puts `chosen` first, False when `rejected`; else the reason it cannot tell."""
    if Verdict.UNSCOREABLE in (chosen.verdict, rejected.verdict):
        return "unscoreable answer"
    tiers = TIERS[label]
    a, b = tiers.index(chosen.verdict), tiers.index(rejected.verdict)
    if a == b:
        return "same behaviour"
    return a < b


def reward_ablation(pairs: Sequence[PreferencePair], reward_model: ResponseScorer | None, refusal_judge: Judge,
                    grader: Judge, config: RewardConfig | None = None,
                    weights: Sequence[float] = (0.0, 1.0)) -> RewardAblation:
    """Score every pair as a group of two under each reward-model weight (rubric judge off) and compare the
    order with the grader's."""
    if not pairs:
        raise ValueError("no held-out pairs to ablate on")
    if not weights:
        raise ValueError("no reward-model weights to compare")
    config = config or RewardConfig()
    answers = [JudgeInput(id=f"{i}:{side}", prompt=p.prompt, response=text)
               for i, p in enumerate(pairs) for side, text in (("c", p.chosen), ("r", p.rejected))]
    graded = grader.judge(answers)
    decided: dict[int, bool] = {}
    left_out: dict[str, int] = defaultdict(int)
    for i, p in enumerate(pairs):
        order = grader_order(p.label, graded[2 * i], graded[2 * i + 1])
        if isinstance(order, str):
            left_out[order] += 1
        else:
            decided[i] = order
    own_judge = _Remembered(refusal_judge, answers)
    scores = _RememberedScores(reward_model, answers) if reward_model is not None and any(weights) else None
    rows: list[AblationRow] = []
    wrong: list[dict[str, bool]] = []  # per weight: grader-decided pair -> ordered against the grader
    for w in weights:
        reward = CombinedReward(config.model_copy(update={"reward_model_weight": w}), scores, None, own_judge)
        first = [_chosen_first(reward, p) for p in pairs]
        wrong.append({str(i): first[i] != want for i, want in decided.items()})
        rows.append(_row(w, pairs, first, decided))
    return RewardAblation(
        grader=grader.judge_id, refusal_judge=refusal_judge.judge_id,
        reward_model=getattr(reward_model, "model_id", type(reward_model).__name__) if reward_model else None,
        n_pairs=len(pairs), n_grader_decided=len(decided), grader_left_out=dict(left_out), rows=rows,
        paired=mcnemar(wrong[0], wrong[-1]) if len(rows) > 1 and decided else None)


class _Remembered(Judge):
    """The refusal judge's verdicts on every answer, computed in one batch: the combined reward then asks for
    them two at a time, once per weight."""

    def __init__(self, inner: Judge, answers: Sequence[JudgeInput]):
        self.inner = inner
        self.known = {(a.prompt, a.response): j for a, j in zip(answers, inner.judge(answers), strict=True)}

    @property
    def judge_id(self) -> str:
        return self.inner.judge_id

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgement]:
        return [self.known[(it.prompt, it.response)] for it in items]


class _RememberedScores:
    """The reward model's score of every answer, computed in one batch."""

    def __init__(self, inner: ResponseScorer, answers: Sequence[JudgeInput]):
        raw = inner.score([a.prompt for a in answers], [a.response for a in answers])
        self.known = {(a.prompt, a.response): s for a, s in zip(answers, raw, strict=True)}

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [self.known[(p, r)] for p, r in zip(prompts, responses, strict=True)]


def _chosen_first(reward: CombinedReward, pair: PreferencePair) -> bool:
    """Whether the combined reward, scoring the pair as one group, gives `chosen` the higher total (a tie is
    not a win: GRPO learns nothing from it)."""
    chosen, rejected = reward.score_detailed([pair.prompt] * 2, [pair.chosen, pair.rejected], [pair.label] * 2,
                                             [pair.policy_id] * 2)
    return chosen.total > rejected.total


def _row(weight: float, pairs: Sequence[PreferencePair], first: Sequence[bool],
         decided: dict[int, bool]) -> AblationRow:
    by_label: dict[str, list[bool]] = defaultdict(list)
    for i, want in decided.items():
        by_label[pairs[i].label].append(first[i] == want)
    right = sum(first[i] == want for i, want in decided.items())
    return AblationRow(
        reward_model_weight=weight, agrees_with_grader=wilson(right, len(decided)),
        agrees_with_grader_by_label={k: wilson(sum(v), len(v)) for k, v in sorted(by_label.items())},
        agrees_with_ranking=wilson(sum(first), len(first)))
