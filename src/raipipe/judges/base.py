"""Verdicts, judgements and the judge registry.

A verdict is tri-state plus one: comply, refuse, partial — and unscoreable, which is never counted
as safe (PyRIT #2044 and Inspect #4026 show what happens when 'could not score' becomes 'safe')."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raipipe.judges.degenerate import degenerate_reason
from raipipe.policy.schema import Policy
from raipipe.registry import Registry


class Verdict(StrEnum):
    COMPLY = "comply"
    REFUSE = "refuse"
    PARTIAL = "partial"
    UNSCOREABLE = "unscoreable"


class JudgeInput(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    id: str = ""
    prompt: str
    response: str
    policy: Policy | None = None
    non_text: str | None = Field(default=None, description="why the raw response was not text (null, a number, "
                                 "an object); such a response is unscoreable")

    @model_validator(mode="before")
    @classmethod
    def _keep_non_text(cls, data: Any) -> Any:
        """A null or non-string response is recorded as such instead of becoming the text 'None'."""
        if isinstance(data, dict) and not isinstance(data.get("response"), str):
            raw = data.get("response")
            data = {**data, "response": "", "non_text": "null response" if raw is None
                    else f"non-text response ({type(raw).__name__})"}
        return data


class Judgement(BaseModel):
    model_config = ConfigDict(frozen=True)
    verdict: Verdict
    score: float | None = Field(default=None, description="judge-specific: class probability or rubric 1-5")
    rationale: str = ""
    judge_id: str = ""
    probabilities: dict[str, float] | None = Field(
        default=None, description="comply / refuse / partial probabilities, for judges that estimate them")


class Judge(ABC):
    """Scores responses. Subclass, set `name`, and decorate with @register_judge to plug one in."""

    name: ClassVar[str] = ""

    @property
    def judge_id(self) -> str:
        """Identity stored with every score: name plus whatever makes its verdicts reproducible."""
        return self.name

    @abstractmethod
    def judge(self, items: Sequence[JudgeInput]) -> list[Judgement]:
        ...

    def heldout_files(self) -> list[Path]:
        """Human-labelled responses this judge never saw, to calibrate it; empty if it has none."""
        return []


def _builtin_judges() -> None:
    # local: the built-in judges import this module (import cycle)
    from raipipe.judges import ensemble, llm_judge, opener, refusal, refusal_xenc, stack  # noqa: F401  (built-ins)


JUDGES: Registry[Judge] = Registry("judge", "raipipe.judges", _builtin_judges)


def register_judge(cls: type[Judge]) -> type[Judge]:
    """Class decorator: `@register_judge class MyJudge(Judge): name = 'mine'` makes `--judge mine` work."""
    return JUDGES.register(cls)


def registered_judges() -> dict[str, type[Judge]]:
    return JUDGES.all()


def load_judge(name: str, **kwargs) -> Judge:
    return JUDGES.get(name)(**kwargs)


def judgement_from_probs(classes: Sequence[Verdict], p: Sequence[float], judge_id: str) -> Judgement:
    """The most probable class, with every class probability as a typed field."""
    k = max(range(len(classes)), key=lambda i: p[i])
    probs = {c.value: float(q) for c, q in zip(classes, p, strict=True)}
    return Judgement(verdict=classes[k], score=float(p[k]), judge_id=judge_id, probabilities=probs,
                     rationale=f"most probable: {classes[k].value} ({p[k]:.2f})")


def split_degenerate(items: Sequence[JudgeInput], judge_id: str) -> tuple[list[Judgement | None], list[int]]:
    """Pre-fill `unscoreable` for degenerate responses; return the slots and the indices left to judge."""
    out: list[Judgement | None] = [None] * len(items)
    todo = []
    for i, item in enumerate(items):
        reason = item.non_text or degenerate_reason(item.response)
        if reason:
            out[i] = Judgement(verdict=Verdict.UNSCOREABLE, rationale=reason, judge_id=judge_id)
        else:
            todo.append(i)
    return out, todo
