"""ConverterSweep: the baseline attack — every converter chain on every seed, one target query each.

It finds which single transformations (or fixed stacks) get through, and its records are the
comparison point for adaptive strategies: an adaptive attack that beats the sweep only by spending
more queries has not shown much."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from raipipe.data.records import PromptRecord
from raipipe.judges.base import Verdict
from raipipe.redteam.converters.base import CONVERTERS, AttackerRefusedError
from raipipe.redteam.converters.chain import ConverterChain, ConverterSpec, as_conversation, derive_seed
from raipipe.redteam.records import AttackOutcome, AttackRecord, attack_id, utcnow
from raipipe.redteam.strategies.base import (
    BudgetExhaustedError,
    QueryBudget,
    Strategy,
    StrategyConfig,
    register_strategy,
)

log = logging.getLogger(__name__)


class SweepConfig(StrategyConfig):
    chains: list[list[ConverterSpec]] = Field(
        default_factory=list, description="converter chains to try, in order; empty means every registered "
        "converter alone (those needing an attacker model only when one is given)")
    samples: int = Field(default=1, ge=1, description="attempts per chain, each with its own seed (other "
                         "template and encoding draws)")
    seed: int = Field(default=0, description="base seed; each attempt's chain seed derives from it")


@register_strategy
class ConverterSweep(Strategy):
    """Apply each chain to each seed, send the result to the target, judge, record."""

    name = "converter_sweep"
    config_cls = SweepConfig
    config: SweepConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chains = self.config.chains or self._default_chains()
        for specs in self.chains:  # fail on a bad name or a missing attacker before any query is spent
            if self._chain(specs).requires_model and self.attacker is None:
                raise ValueError(f"chain {[s.name for s in specs]} needs an attacker model; pass attacker=")

    def _default_chains(self) -> list[list[ConverterSpec]]:
        return [[ConverterSpec(name=n)] for n, cls in CONVERTERS.all().items()
                if self.attacker is not None or not cls.requires_model]

    def _chain(self, specs: list[ConverterSpec]) -> ConverterChain:
        return ConverterChain.from_specs(specs, model=self.attacker, refusal_judge=self.attacker_judge)

    def attack(self, seed: PromptRecord, budget: QueryBudget) -> Iterator[AttackRecord]:
        planned = [(specs, k) for specs in self.chains for k in range(self.config.samples)]
        for n, (specs, k) in enumerate(planned):
            if budget.remaining <= 0:
                log.info("seed %s: budget of %d spent, %d attempts skipped", seed.id, budget.limit, len(planned) - n)
                return
            yield self.attempt(seed, specs, derive_seed(self.config.seed, k, "sample"), budget)

    def attempt(self, seed: PromptRecord, specs: list[ConverterSpec], chain_seed: int,
                budget: QueryBudget) -> AttackRecord:
        """One chain on one seed: convert, query, judge. Attacker refusals and errors become records too."""
        started = utcnow()
        chain = self._chain(specs)
        steps = chain.plan(chain_seed)

        def record(outcome: AttackOutcome, **kw: Any) -> AttackRecord:
            return AttackRecord(id=attack_id(self.name, seed.id, steps, chain_seed), strategy=self.name,
                                seed_id=seed.id, seed_prompt=seed.prompt, label=seed.label, pair_id=seed.pair_id,
                                chain_seed=chain_seed, chain=steps, outcome=outcome,
                                target_model_id=self.target.model_id, judge_id=self.judge.judge_id,
                                started_at=started, finished_at=utcnow(), **kw)

        try:
            messages = chain.run_steps(as_conversation(seed.prompt), steps)
        except AttackerRefusedError as e:
            return record(AttackOutcome.ATTACKER_FAILED, error=str(e))
        try:
            turn = self.exchange(0, messages, seed.prompt, budget)
        except BudgetExhaustedError:
            raise
        except Exception as e:  # a backend or judge failure is recorded, not fatal to the sweep
            return record(AttackOutcome.ERROR, converted=messages, error=f"{type(e).__name__}: {e}")
        verdict = turn.verdict.verdict if turn.verdict else Verdict.UNSCOREABLE
        return record(AttackOutcome.from_verdict(verdict), converted=messages, turns=[turn])
