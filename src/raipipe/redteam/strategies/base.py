"""What an attack strategy is: given seed prompts, a target, a judge (and maybe an attacker model), it
produces AttackRecords. A strategy is one class with a `name` and a pydantic config, registered in
STRATEGIES (entry-point group `raipipe.attacks`).

Every strategy gets a query budget per seed (target queries only), enforced here rather than trusted
to each strategy, so a runaway search cannot spend more than the config allows."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind
from raipipe.judges.base import Judge, JudgeInput
from raipipe.models.base import ChatModel, GenerationParams, Message
from raipipe.policy.schema import Pillar
from raipipe.redteam.records import AttackRecord, AttackTurn, JudgeVerdict, utcnow
from raipipe.registry import Registry


class BudgetExhaustedError(RuntimeError):
    """A strategy tried to query the target past its per-seed budget."""


class QueryBudget:
    """Counts target queries for one seed and refuses the one past the limit."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def spend(self, n: int = 1) -> None:
        if self.used + n > self.limit:
            raise BudgetExhaustedError(f"query budget of {self.limit} per seed exhausted")
        self.used += n


class StrategyConfig(BaseModel):
    """Settings every strategy has; subclasses add their own fields."""

    model_config = ConfigDict(extra="forbid")
    budget_per_seed: int = Field(default=50, ge=1, description="most target queries spent on one seed prompt")
    generation: GenerationParams = Field(default_factory=lambda: GenerationParams(max_new_tokens=256),
                                         description="sampling settings for the target")


def as_seed(seed: PromptRecord | str) -> PromptRecord:
    """A PromptRecord for a bare string seed (assumed a harmful request written ad hoc by a red-teamer)."""
    if isinstance(seed, PromptRecord):
        return seed
    sid = "seed-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
    return PromptRecord(id=sid, prompt=seed, label=Label.HARMFUL, pillar=Pillar.SAFETY,
                        source=Provenance(kind=SourceKind.RED_TEAM, name="adhoc"))


class Strategy(ABC):
    """Attacks seed prompts. Subclass, set `name` (and `config_cls`), implement `attack`, register it."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[StrategyConfig]] = StrategyConfig

    def __init__(self, target: ChatModel, judge: Judge, config: StrategyConfig | dict | None = None,
                 attacker: ChatModel | None = None, attacker_judge: Judge | None = None):
        self.target, self.judge = target, judge
        self.attacker, self.attacker_judge = attacker, attacker_judge
        self.config = config if isinstance(config, self.config_cls) else self.config_cls.model_validate(config or {})

    @abstractmethod
    def attack(self, seed: PromptRecord, budget: QueryBudget) -> Iterator[AttackRecord]:
        """Attack one seed within `budget`, yielding a record per attempt."""

    def run(self, seeds: Iterable[PromptRecord | str]) -> Iterator[AttackRecord]:
        for seed in seeds:
            yield from self.attack(as_seed(seed), QueryBudget(self.config.budget_per_seed))

    def exchange(self, index: int, sent: Sequence[Message], request: str, budget: QueryBudget) -> AttackTurn:
        """Send one conversation to the target (spending budget) and judge the answer against the seed
        request — the intent being attacked, not its disguise."""
        budget.spend()
        sent_at = utcnow()
        response = self.target.generate([list(sent)], self.config.generation)[0][0]
        received_at = utcnow()
        judgement = self.judge.judge([JudgeInput(prompt=request, response=response)])[0]
        return AttackTurn(index=index, sent=list(sent), response=response, sent_at=sent_at,
                          received_at=received_at, verdict=JudgeVerdict.from_judgement(judgement))


def _builtin_strategies() -> None:
    # local: the built-in strategies import this module (import cycle)
    from raipipe.redteam.strategies import sweep  # noqa: F401  (built-ins)


STRATEGIES: Registry[Strategy] = Registry("attack strategy", "raipipe.attacks", _builtin_strategies)


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: `@register_strategy class Mine(Strategy): name = 'mine'` adds an attack strategy."""
    return STRATEGIES.register(cls)


def load_strategy(name: str, target: ChatModel, judge: Judge, config: StrategyConfig | dict | None = None,
                  **kwargs) -> Strategy:
    return STRATEGIES.get(name)(target, judge, config, **kwargs)
