"""The combined reward for online optimisation (GRPO): reward model + rubric judge + refusal penalties.

total = w_rm · norm(reward model) + w_rubric · norm(rubric 1–5) − E[penalty]

The penalty is an expectation over the refusal judge's class probabilities, so it is graded, not
binary: a binary reward gives every completion in a GRPO group the same value and so zero advantage.
A completion the refusal judge cannot score (empty, no words, a token loop) is never treated as
safe: its quality components are set to the worst value seen in the batch and it pays a fixed
penalty, so it ranks below every scored completion that pays no penalty."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from raipipe.judges.base import Judge, JudgeInput, Judgement, Verdict
from raipipe.policy import load_pack

Normalisation = Literal["zscore", "minmax", "none"]
LABELS = ("harmful", "benign")


class ResponseScorer(Protocol):
    """What CombinedReward needs from a reward model (RewardModelScorer satisfies it)."""

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...


class RewardConfig(BaseModel):
    """Weights, normalisation and penalties of the combined reward (recorded in training lineage)."""

    model_config = ConfigDict(extra="forbid")
    reward_model_weight: float = Field(default=1.0, ge=0, description="weight of the normalised reward-model score")
    check_reward_model: bool = Field(
        default=True,
        description="before GRPO, score the held-out pairs with the combined reward at weight 0 and at "
                    "reward_model_weight, against the evaluation judge; when the reward model orders them worse "
                    "(exact paired test, p < 0.05), train without it and say so. An AI-ranked reward model learns "
                    "'answering beats refusing' and can turn harmful prompts' order around")
    rubric_weight: float = Field(default=1.0, ge=0, description="weight of the normalised rubric-judge score (1-5)")
    normalisation: Normalisation = Field(
        default="zscore",
        description="per-batch normalisation of each component before weighting: 'zscore' (mean 0, sd 1), "
                    "'minmax' (to [0, 1]) or 'none' (raw values; use for logging comparable across batches)")
    benign_refusal_penalty: float = Field(default=1.0, ge=0, description="penalty × P(refuse) on a benign prompt")
    benign_partial_penalty: float = Field(default=0.5, ge=0, description="penalty × P(partial) on a benign prompt")
    harmful_compliance_penalty: float = Field(default=2.0, ge=0, description="penalty × P(comply) on a harmful prompt")
    harmful_partial_penalty: float = Field(default=1.0, ge=0, description="penalty × P(partial) on a harmful prompt")
    unscoreable_penalty: float = Field(
        default=2.0, gt=0,
        description="fixed penalty for a completion the refusal judge cannot score; its other components are set "
                    "to the batch's worst, so it is never treated as safe")


class RewardBreakdown(BaseModel):
    """Every component of one completion's reward, for logging and debugging reward hacking."""

    total: float
    reward_model: float | None = Field(default=None, description="raw reward-model score")
    reward_model_norm: float | None = None
    rubric: float | None = Field(default=None, description="raw rubric score 1-5; None when absent or unscoreable")
    rubric_norm: float | None = None
    rubric_unscoreable: bool = False
    verdict: str = Field(description="refusal judge verdict")
    p_comply: float | None = None
    p_refuse: float | None = None
    p_partial: float | None = None
    penalty: float = 0.0
    label: str


def normalise(values: Sequence[float], method: Normalisation) -> list[float]:
    """Per-batch normalisation; a constant batch maps to 0 (zscore) or 0.5 (minmax)."""
    if not values or method == "none":
        return list(values)
    if method == "zscore":
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return [(v - mean) / sd if sd > 1e-12 else 0.0 for v in values]
    lo, hi = min(values), max(values)
    return [(v - lo) / (hi - lo) if hi - lo > 1e-12 else 0.5 for v in values]


CLASS_NAMES = ("comply", "refuse", "partial")


def class_probs(j: Judgement) -> dict[str, float]:
    """comply/refuse/partial probabilities of a verdict: the judge's own when it estimates them; else
    `score` on its verdict and the rest spread evenly."""
    found = j.probabilities or {}
    if set(found) >= {"comply", "refuse", "partial"} and sum(found[c] for c in CLASS_NAMES) > 0:
        s = sum(found[c] for c in CLASS_NAMES)
        return {c: found[c] / s for c in CLASS_NAMES}
    p = 1.0 if j.score is None else min(max(float(j.score), 0.0), 1.0)
    rest = (1.0 - p) / 2
    return {c: (p if c == j.verdict.value else rest) for c in CLASS_NAMES}


def _message_text(x: Any) -> str:
    """Text of a plain string, a message dict, or a list of messages (content may be a list of parts)."""
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        c = x.get("content", "")
        if isinstance(c, list):
            return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in c)
        return "" if c is None else str(c)
    if isinstance(x, (list, tuple)):
        return "\n".join(_message_text(m) for m in x)
    raise TypeError(f"cannot read text from {type(x).__name__}")


def prompt_text(prompt: Any) -> str:
    """The user request of a standard or conversational prompt (last user turn; system prompts skipped)."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ValueError(f"conversational prompt has no user message: {prompt!r:.200}")
    return _message_text(users[-1])


def completion_text(completion: Any) -> str:
    """The assistant text of a standard or conversational completion."""
    if isinstance(completion, str):
        return completion
    msgs = [m for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
    return "\n".join(_message_text(m) for m in msgs)


def _check_batch(n: int, completions: Sequence[str], labels: Sequence[str], policy_ids: Sequence[str | None]) -> None:
    if not (len(completions) == len(labels) == len(policy_ids) == n):
        raise ValueError(f"lengths differ: {n} prompts, {len(completions)} completions, {len(labels)} labels, "
                         f"{len(policy_ids)} policy ids")
    for i, lab in enumerate(labels):
        if lab not in LABELS:
            raise ValueError(f"item {i}: field 'label': {lab!r} is not one of {LABELS}")


class CombinedReward:
    """Scores completions with the configured components; `last_breakdown` keeps the latest details."""

    def __init__(self, config: RewardConfig, reward_model: ResponseScorer | None, rubric_judge: Judge | None,
                 refusal_judge: Judge, pack=None):
        self.config, self.reward_model, self.rubric_judge, self.refusal_judge = (
            config, reward_model, rubric_judge, refusal_judge)
        self._pack = pack
        self.last_breakdown: list[RewardBreakdown] = []

    @property
    def pack(self):
        if self._pack is None:
            self._pack = load_pack()
        return self._pack

    def lineage(self) -> dict[str, Any]:
        """What produced these rewards, for a training run's lineage."""
        rm = self.reward_model
        return {"config": self.config.model_dump(),
                "reward_model": getattr(rm, "model_id", type(rm).__name__) if rm is not None else None,
                "rubric_judge": self.rubric_judge.judge_id if self.rubric_judge is not None else None,
                "refusal_judge": self.refusal_judge.judge_id}

    def _policies(self, policy_ids: Sequence[str | None]):
        if self.rubric_judge is None:
            return [None] * len(policy_ids)
        return [self.pack.get(pid) if pid else None for pid in policy_ids]

    def score_detailed(self, prompts: Sequence[str], completions: Sequence[str], labels: Sequence[str],
                       policy_ids: Sequence[str | None] | None = None) -> list[RewardBreakdown]:
        n = len(prompts)
        policy_ids = list(policy_ids) if policy_ids is not None else [None] * n
        _check_batch(n, completions, labels, policy_ids)
        cfg = self.config
        items = [JudgeInput(id=str(i), prompt=p, response=c) for i, (p, c) in enumerate(zip(prompts, completions,
                                                                                             strict=True))]
        verdicts = self.refusal_judge.judge(items)
        scoreable = [v.verdict is not Verdict.UNSCOREABLE for v in verdicts]
        rm_raw, rm_norm = self._reward_model_scores(prompts, completions, scoreable)
        rub_raw, rub_norm, rub_bad = self._rubric_scores(prompts, completions, policy_ids, scoreable)
        out = []
        for i in range(n):
            v = verdicts[i]
            total = 0.0
            rm, rub = rm_norm[i], rub_norm[i]
            if rm is not None:
                total += cfg.reward_model_weight * rm
            if rub is not None:
                total += cfg.rubric_weight * rub
            probs = class_probs(v) if scoreable[i] else {}
            penalty = self._penalty(labels[i], probs) if scoreable[i] else cfg.unscoreable_penalty
            total -= penalty
            out.append(RewardBreakdown(
                total=total, reward_model=rm_raw[i], reward_model_norm=rm, rubric=rub_raw[i],
                rubric_norm=rub, rubric_unscoreable=rub_bad[i], verdict=v.verdict.value,
                p_comply=probs.get("comply"), p_refuse=probs.get("refuse"), p_partial=probs.get("partial"),
                penalty=penalty, label=labels[i]))
        self.last_breakdown = out
        return out

    def _reward_model_scores(self, prompts: Sequence[str], completions: Sequence[str],
                             scoreable: Sequence[bool]) -> tuple[list[float | None], list[float | None]]:
        """Raw and normalised reward-model scores; all None when the component is off."""
        n = len(prompts)
        if self.reward_model is None or self.config.reward_model_weight <= 0:
            return [None] * n, [None] * n
        raw: list[float | None] = [float(x) for x in self.reward_model.score(list(prompts), list(completions))]
        return raw, self._component(raw, scoreable)

    def _rubric_scores(self, prompts: Sequence[str], completions: Sequence[str], policy_ids: Sequence[str | None],
                       scoreable: Sequence[bool]) -> tuple[list[float | None], list[float | None], list[bool]]:
        """Raw and normalised rubric scores, and which ones the judge could not produce; None when off."""
        n = len(prompts)
        raw: list[float | None] = [None] * n
        bad = [False] * n
        if self.rubric_judge is None or self.config.rubric_weight <= 0:
            return raw, [None] * n, bad
        pols = self._policies(policy_ids)
        judged = self.rubric_judge.judge([JudgeInput(id=str(i), prompt=prompts[i], response=completions[i],
                                                     policy=pols[i]) for i in range(n)])
        for i, j in enumerate(judged):
            score = j.score if j.verdict is not Verdict.UNSCOREABLE else None
            raw[i] = None if score is None else float(score)
            bad[i] = score is None
        # a rubric the judge could not produce counts as the batch's worst, never as neutral or safe
        return raw, self._component(raw, [s and not b for s, b in zip(scoreable, bad, strict=True)]), bad

    def _penalty(self, label: str, probs: Mapping[str, float]) -> float:
        """Expected refusal penalty of a scored completion: comply/partial on harmful, refuse/partial on benign."""
        cfg = self.config
        if label == "harmful":
            return cfg.harmful_compliance_penalty * probs["comply"] + cfg.harmful_partial_penalty * probs["partial"]
        return cfg.benign_refusal_penalty * probs["refuse"] + cfg.benign_partial_penalty * probs["partial"]

    def _component(self, raw: Sequence[float | None], usable: Sequence[bool]) -> list[float | None]:
        """Normalise over the usable items; the rest get the worst normalised value of the batch."""
        good = {i: x for i, (x, u) in enumerate(zip(raw, usable, strict=True)) if u and x is not None}
        normed = normalise(list(good.values()), self.config.normalisation)
        floor = min(normed) if normed else 0.0
        out: list[float | None] = [floor] * len(raw)
        for i, v in zip(good, normed, strict=True):
            out[i] = v
        return out

    def score(self, prompts: Sequence[str], completions: Sequence[str], labels: Sequence[str],
              policy_ids: Sequence[str | None] | None = None) -> list[float]:
        return [b.total for b in self.score_detailed(prompts, completions, labels, policy_ids)]

    def as_trl_reward_func(self, label_column: str = "label", policy_column: str = "policy_id",
                           name: str = "combined_reward") -> Callable[..., list[float | None]]:
        """A reward function for TRL's GRPOTrainer.

        GRPO calls it with prompts=, completions= (strings, or lists of message dicts when the
        dataset is conversational), completion_ids=, every dataset column as a list, and
        trainer_state= / log_metric= / log_extra=. The dataset must have a `label_column`;
        `policy_column` is optional (the rubric judge then uses its generic rubric)."""

        def reward_func(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
            if label_column not in kwargs:
                raise KeyError(f"GRPO dataset has no {label_column!r} column; columns passed: "
                               f"{sorted(k for k in kwargs if k not in ('trainer_state', 'log_metric', 'log_extra'))}")
            labels = [str(x) for x in kwargs[label_column]]
            pids = kwargs.get(policy_column)
            detail = self.score_detailed([prompt_text(p) for p in prompts],
                                         [completion_text(c) for c in completions], labels,
                                         [p or None for p in pids] if pids is not None else None)
            log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
            if callable(log_metric):
                for key, val in summarise_breakdown(detail).items():
                    log_metric(f"{name}/{key}", val)
            if callable(log_extra):
                log_extra(f"{name}/verdict", [b.verdict for b in detail])
                log_extra(f"{name}/penalty", [round(b.penalty, 4) for b in detail])
            return [b.total for b in detail]

        reward_func.__name__ = name
        reward_func.__qualname__ = name
        return reward_func


def summarise_breakdown(detail: Sequence[RewardBreakdown]) -> dict[str, float]:
    """Batch means and rates worth plotting: penalties, verdict mix and raw component scores."""
    if not detail:
        return {}
    n = len(detail)
    out = {"total_mean": sum(b.total for b in detail) / n, "penalty_mean": sum(b.penalty for b in detail) / n,
           "unscoreable_rate": sum(b.verdict == "unscoreable" for b in detail) / n}
    for lab, verdict, key in (("harmful", "comply", "harmful_comply_rate"),
                              ("benign", "refuse", "benign_refuse_rate")):
        group = [b for b in detail if b.label == lab]
        if group:
            out[key] = sum(b.verdict == verdict for b in group) / len(group)
    rms = [b.reward_model for b in detail if b.reward_model is not None]
    if rms:
        out["reward_model_raw_mean"] = sum(rms) / len(rms)
    rubs = [b.rubric for b in detail if b.rubric is not None]
    if rubs:
        out["rubric_raw_mean"] = sum(rubs) / len(rubs)
    if any(b.rubric_unscoreable for b in detail):
        out["rubric_unscoreable_rate"] = sum(b.rubric_unscoreable for b in detail) / n
    return out
