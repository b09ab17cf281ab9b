"""Several attacker agents on one seed at once, in one of two modes.

`competing`: every agent sees a leaderboard of the best score each agent has reached so far and is told
to beat the top one. `collaborating`: the agents share a memory of tactics that worked — the prompts and
converter chains of earlier successful attempts, retrieved by similarity to the current goal — and see
their teammates' best prompts on this seed. Each agent is a PAIR stream with its own preferred framing
(and, optionally, its own converter chain), so the agents differ even with a greedy attacker model; any
backend can play the agents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from raipipe.data.records import PromptRecord
from raipipe.models.base import Message
from raipipe.redteam.converters.chain import ConverterSpec
from raipipe.redteam.memory import SimilarityKind, Tactic, TacticMemory
from raipipe.redteam.records import AttackerTurn, AttackRecord
from raipipe.redteam.strategies import prompts
from raipipe.redteam.strategies.base import QueryBudget, register_strategy
from raipipe.redteam.strategies.pair import PairAttack, RefineConfig, SeedState, Stream


class MultiAgentConfig(RefineConfig):
    mode: Literal["competing", "collaborating"] = "competing"
    agents: int = Field(default=3, ge=1, description="attacker agents per seed (each a refinement stream)")
    chains: list[list[ConverterSpec]] = Field(default_factory=list, description="converter chains the agents "
                                              "put their prompts through, agent k taking chain k mod len")
    memory_path: str | None = Field(default=None, description="JSON-lines tactic memory shared across seeds and "
                                    "runs (collaborating); unset keeps it in this strategy instance")
    similarity: SimilarityKind = Field(default="auto", description="tactic retrieval: MiniLM if it loads, else "
                                       "TF-IDF; or force one")
    tactics_k: int = Field(default=3, ge=1, description="tactics shown to the agents")
    min_similarity: float = Field(default=0.1, ge=-1.0, le=1.0, description="least goal similarity retrieved")


@register_strategy
class MultiAgentAttack(PairAttack):
    """Competing or collaborating attacker agents sharing one seed's query budget."""

    name = "multi_agent"
    config_cls = MultiAgentConfig
    config: MultiAgentConfig  # type: ignore[assignment]

    def __init__(self, *args: Any, memory: TacticMemory | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.memory = memory or TacticMemory(path=self.config.memory_path, kind=self.config.similarity)
        self._retrieved: list[tuple[Tactic, float]] = []

    @property
    def n_streams(self) -> int:
        return self.config.agents

    @property
    def collaborating(self) -> bool:
        return self.config.mode == "collaborating"

    def attack(self, seed: PromptRecord, budget: QueryBudget) -> Iterator[AttackRecord]:
        self._retrieved = (self.memory.retrieve(seed.prompt, self.config.tactics_k, self.config.min_similarity)
                           if self.collaborating and len(self.memory) else [])
        yield from super().attack(seed, budget)

    def open_stream(self, goal: str, k: int) -> Stream:
        """Agent k: its own framing, and its converter chain — in collaborating mode the chain of the k-th
        retrieved tactic when that one used a chain."""
        stream = super().open_stream(goal, k)
        style = prompts.AGENT_STYLES[k % len(prompts.AGENT_STYLES)]
        system = stream.conv[0]
        stream.conv[0] = Message(role="system", content=f"{system.content}\n\nYou are agent {k + 1}. {style}")
        chains = self.config.chains
        stream.chain = list(chains[k % len(chains)]) if chains else []
        if k < len(self._retrieved) and self._retrieved[k][0].chain:
            stream.chain = list(self._retrieved[k][0].chain)
        return stream

    def context(self, stream: Stream, streams: list[Stream], goal: str) -> str:
        if not self.collaborating:
            rows = "\n".join(f"- agent {s.index + 1}: {s.best:.2f}" for s in sorted(streams, key=lambda s: -s.best))
            return prompts.LEADERBOARD.format(rows=rows, own=stream.best)
        clip = self.config.attacker_settings.response_chars
        tactics = [f"- (goal similarity {sim:.2f}) {prompts.clip(t.prompt, clip)}"
                   + (f" [then converted by: {' + '.join(c.name for c in t.chain)}]" if t.chain else "")
                   for t, sim in self._retrieved]
        tactics += [f"- teammate agent {s.index + 1} reached {s.best:.2f} with: {prompts.clip(s.best_prompt, clip)}"
                    for s in streams if s is not stream and s.best_prompt]
        return prompts.TACTICS.format(rows="\n".join(tactics)) if tactics else ""

    def try_prompt(self, seed: PromptRecord, stream: Stream, aturn: AttackerTurn, it: int, budget: QueryBudget,
                   state: SeedState) -> AttackRecord:
        record = super().try_prompt(seed, stream, aturn, it, budget, state)
        record.params.update(mode=self.config.mode, agent=stream.index)
        if self.collaborating:
            self.memory.add_record(record)  # only successes are kept
        return record
