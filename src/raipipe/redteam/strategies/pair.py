"""PAIR-style iterative refinement: an attacker model proposes a prompt for the seed's goal, the target
answers, the judge's score goes back to the attacker, and the attacker revises — until the judge says the
target complied or the seed's query budget is spent.

Several independent streams (attacker conversations) may run side by side; their attacker calls are
batched per iteration. Each proposal is one record: the attacker's turn, the target's answer, the
verdict and the score. The multi-agent strategy builds on the same streams."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from raipipe.data.records import PromptRecord
from raipipe.models.base import Message
from raipipe.redteam.converters.base import AttackerRefusedError
from raipipe.redteam.converters.chain import ConverterSpec, derive_seed
from raipipe.redteam.records import AttackerTurn, AttackOutcome, AttackRecord, utcnow
from raipipe.redteam.strategies import prompts
from raipipe.redteam.strategies.adaptive import AdaptiveConfig, AdaptiveStrategy, outcome_of
from raipipe.redteam.strategies.base import QueryBudget, StrategyConfig, register_strategy

log = logging.getLogger(__name__)


class RefineConfig(AdaptiveConfig):
    iterations: int = Field(default=5, ge=1, description="attacker proposals per stream")
    keep_history: int = Field(default=4, ge=1, description="feedback rounds kept in the attacker's context")


class PairConfig(RefineConfig):
    streams: int = Field(default=1, ge=1, description="independent attacker conversations per seed")


@dataclass
class Stream:
    """One attacker conversation and what it has achieved so far."""

    index: int
    conv: list[Message]
    chain: list[ConverterSpec] = field(default_factory=list)
    best: float = 0.0
    best_prompt: str = ""
    active: bool = True


@dataclass
class SeedState:
    """Per-seed counters the loop stops on."""

    failures: int = 0
    done: bool = False


@register_strategy
class PairAttack(AdaptiveStrategy):
    """Iterative refinement of one attacker-written prompt per stream, driven by the judge's score."""

    name = "pair"
    config_cls: ClassVar[type[StrategyConfig]] = PairConfig
    config: PairConfig

    @property
    def n_streams(self) -> int:
        return self.config.streams

    def open_stream(self, goal: str, k: int) -> Stream:
        """A fresh attacker conversation; with several streams each is told to differ (so a greedy attacker
        does not write the same prompt in every stream)."""
        n = self.n_streams
        first = prompts.FIRST_TURN.format(goal=goal) + (prompts.VARIANT.format(k=k + 1, n=n) if n > 1 else "")
        return Stream(k, [Message(role="system", content=prompts.ATTACKER_SYSTEM.format(goal=goal)),
                          Message(role="user", content=first)])

    def context(self, stream: Stream, streams: list[Stream], goal: str) -> str:
        """Extra text for the stream's next attacker turn (the multi-agent modes add to it)."""
        return ""

    def attack(self, seed: PromptRecord, budget: QueryBudget) -> Iterator[AttackRecord]:
        goal, state = seed.prompt, SeedState()
        streams = [self.open_stream(goal, k) for k in range(self.n_streams)]
        for it in range(self.config.iterations):
            active = [s for s in streams if s.active]
            if not active or state.done:
                return
            if budget.remaining <= 0:
                log.info("%s on %s: budget of %d spent", self.name, seed.id, budget.limit)
                return
            yield from self.iterate(seed, active, streams, it, budget, state)

    def iterate(self, seed: PromptRecord, active: list[Stream], streams: list[Stream], it: int,
                budget: QueryBudget, state: SeedState) -> Iterator[AttackRecord]:
        """One attacker proposal per active stream (one batched call), then one target query each."""
        started = utcnow()
        convs = [self.with_context(s, streams, seed.prompt) for s in active]
        try:
            turns = self.ask_many(convs, seed.prompt, f"{self.name}:i{it}", index=it * len(streams))
        except Exception as e:  # the attacker backend failed: no prompt, no target query
            state.failures += 1
            state.done = state.failures >= self.config.attacker_settings.max_failures
            yield self.record(seed, f"i{it}", started, AttackOutcome.ERROR, error=f"attacker: {type(e).__name__}: {e}")
            return
        for stream, aturn in zip(active, turns, strict=True):
            if state.done or budget.remaining <= 0:
                return
            yield self.try_prompt(seed, stream, aturn, it, budget, state)

    def with_context(self, stream: Stream, streams: list[Stream], goal: str) -> list[Message]:
        extra = self.context(stream, streams, goal)
        if not extra:
            return list(stream.conv)
        last = stream.conv[-1]
        return [*stream.conv[:-1], Message(role=last.role, content=last.content + extra)]

    def try_prompt(self, seed: PromptRecord, stream: Stream, aturn: AttackerTurn, it: int, budget: QueryBudget,
                   state: SeedState) -> AttackRecord:
        """Send one attacker-written prompt (through the stream's converter chain) and feed the score back."""
        started, key = utcnow(), f"s{stream.index}:i{it}"
        params = {"stream": stream.index, "iteration": it}
        if aturn.failure or aturn.prompt is None:
            state.failures += 1
            state.done = state.failures >= self.config.attacker_settings.max_failures
            return self.failed_attacker_record(seed, key, started, aturn, params=params)
        try:
            steps, sent = self.convert(aturn.prompt, stream.chain, derive_seed(self.config.seed, it, key))
        except AttackerRefusedError as e:
            state.failures += 1
            state.done = state.failures >= self.config.attacker_settings.max_failures
            return self.record(seed, key, started, AttackOutcome.ATTACKER_FAILED, attack_prompt=aturn.prompt,
                               attacker_turns=[aturn], error=str(e), params=params)
        turn, error = self.query(0, sent, seed.prompt, budget)
        common: dict[str, Any] = {"chain": steps, "attack_prompt": aturn.prompt, "converted": sent,
                                  "attacker_turns": [aturn], "params": params}
        if turn is None:
            stream.active = False
            return self.record(seed, key, started, AttackOutcome.ERROR, error=error, **common)
        score = self.score(turn.verdict, turn.response)
        self.feedback(stream, aturn, turn.response, score, seed.prompt)
        if self.succeeded(turn.verdict, score):
            state.done = True
        return self.record(seed, key, started, outcome_of(turn.verdict), turns=[turn], score=score, **common)

    def feedback(self, stream: Stream, aturn: AttackerTurn, response: str, score: float, goal: str) -> None:
        """Append the attacker's reply and the target's scored answer; keep the context bounded."""
        if score >= stream.best:
            stream.best, stream.best_prompt = score, aturn.prompt or ""
        note = prompts.FEEDBACK.format(response=prompts.clip(response, self.config.attacker_settings.response_chars),
                                       score=score, goal=goal)
        stream.conv += [Message(role="assistant", content=aturn.output), Message(role="user", content=note)]
        keep = 2 * self.config.keep_history
        if len(stream.conv) > 2 + keep:
            stream.conv = stream.conv[:2] + stream.conv[-keep:]
