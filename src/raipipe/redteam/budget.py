"""Where the next red-team attempts should go: a bandit over the policy × strategy coverage matrix.

Each cell tracks attempts, successes and cost (target queries). Every cell first gets a minimum number of
attempts (thin coverage is a blind spot in the report, whatever its yield); after that Thompson sampling
(or UCB) sends attempts where successes per query look highest, while still sampling uncertain cells.
The state is plain JSON, so a campaign stops and resumes; proposals are seeded by the state, so the same
state proposes the same allocation."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from raipipe.fileio import atomic_write_json
from raipipe.redteam.records import AttackOutcome, AttackRecord

Cell = tuple[str, str]  # (policy id, strategy name)


class CellStats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str
    strategy: str
    attempts: int = Field(default=0, ge=0, description="attempts that reached the target")
    successes: int = Field(default=0, ge=0)
    cost: int = Field(default=0, ge=0, description="target queries spent")
    attacker_failures: int = Field(default=0, ge=0, description="attempts lost to the attacker; no target cost")

    @property
    def cell(self) -> Cell:
        return (self.policy, self.strategy)

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0


class AllocatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["thompson", "ucb"] = "thompson"
    min_attempts: int = Field(default=1, ge=0, description="attempts every cell gets before the bandit chooses")
    prior_successes: float = Field(default=1.0, gt=0, description="Beta prior α (Thompson)")
    prior_failures: float = Field(default=1.0, gt=0, description="Beta prior β (Thompson)")
    exploration: float = Field(default=1.0, ge=0, description="UCB exploration weight")
    cost_aware: bool = Field(default=True, description="rank by successes per target query, not per attempt")
    count_partial: bool = Field(default=False, description="count partial compliance as a success")
    seed: int = 0


class BudgetAllocator:
    """Thompson-sampling (or UCB) allocation of attempts over policy × strategy cells."""

    def __init__(self, policies: Sequence[str], strategies: Sequence[str],
                 config: AllocatorConfig | dict | None = None, cells: Iterable[CellStats] = ()):
        self.config = config if isinstance(config, AllocatorConfig) else AllocatorConfig.model_validate(config or {})
        self.cells: dict[Cell, CellStats] = {(p, s): CellStats(policy=p, strategy=s)
                                             for p in policies for s in strategies}
        for c in cells:
            self.cells[c.cell] = c
        if not self.cells:
            raise ValueError("the coverage matrix needs at least one policy and one strategy")

    def observe(self, policy: str, strategy: str, attempts: int = 1, successes: int = 0, cost: int | None = None,
                attacker_failures: int = 0) -> None:
        """Add results to a cell (a new policy or strategy adds a cell)."""
        if successes > attempts:
            raise ValueError(f"{successes} successes out of {attempts} attempts")
        stats = self.cells.setdefault((policy, strategy), CellStats(policy=policy, strategy=strategy))
        stats.attempts += attempts
        stats.successes += successes
        stats.cost += attempts if cost is None else cost
        stats.attacker_failures += attacker_failures

    def observe_records(self, records: Iterable[AttackRecord],
                        policy_of: Mapping[str, str] | Callable[[AttackRecord], str]) -> None:
        """Count attack records into their cells; `policy_of` maps a seed id (or a record) to its policy."""
        wins = {AttackOutcome.SUCCESS} | ({AttackOutcome.PARTIAL} if self.config.count_partial else set())
        for r in records:
            policy = policy_of(r) if callable(policy_of) else policy_of[r.seed_id]
            if r.outcome is AttackOutcome.ATTACKER_FAILED:
                self.observe(policy, r.strategy, attempts=0, cost=0, attacker_failures=1)
            elif r.turns:
                self.observe(policy, r.strategy, successes=int(r.outcome in wins), cost=len(r.turns))

    def value(self, stats: CellStats, rng: random.Random, total: int, pending: int) -> float:
        """The bandit's index of a cell: a posterior draw (Thompson) or an upper bound (UCB)."""
        c = self.config
        failures = stats.attempts - stats.successes
        if c.method == "thompson":
            rate = rng.betavariate(c.prior_successes + stats.successes, c.prior_failures + failures)
        else:
            n = stats.attempts + pending
            mean = (stats.successes + c.prior_successes) / (stats.attempts + c.prior_successes + c.prior_failures)
            rate = mean + c.exploration * math.sqrt(2 * math.log(total + 1) / max(n, 1))
        if c.cost_aware:
            rate /= (stats.cost + 1) / (stats.attempts + 1)  # smoothed queries per attempt
        return rate

    def propose(self, n: int) -> list[Cell]:
        """The cells the next `n` attempts should go to (repeats allowed), thinnest-covered cells first."""
        order = sorted(self.cells)
        pending: Counter[Cell] = Counter()
        picks: list[Cell] = []
        for cell in sorted(order, key=lambda k: self.cells[k].attempts):  # coverage before yield
            need = self.config.min_attempts - self.cells[cell].attempts
            while need > 0 and len(picks) < n:
                picks.append(cell)
                pending[cell] += 1
                need -= 1
        rng = random.Random(self._rng_seed(n))
        total = sum(s.attempts for s in self.cells.values())
        while len(picks) < n:
            best = max(order, key=lambda k: self.value(self.cells[k], rng, total + len(picks), pending[k]))
            picks.append(best)
            pending[best] += 1
        return picks

    def allocation(self, n: int) -> dict[Cell, int]:
        """`propose` as counts per cell (cells getting nothing left out)."""
        return dict(Counter(self.propose(n)))

    def _rng_seed(self, n: int) -> int:
        state = json.dumps([self.config.seed, n, [[*k, v.attempts, v.successes, v.cost]
                                                  for k, v in sorted(self.cells.items())]])
        return int(hashlib.sha256(state.encode()).hexdigest()[:12], 16)

    def to_json(self) -> dict:
        return {"version": 1, "config": self.config.model_dump(mode="json"),
                "cells": [s.model_dump(mode="json") for _, s in sorted(self.cells.items())]}

    @classmethod
    def from_json(cls, data: Mapping) -> BudgetAllocator:
        cells = [CellStats.model_validate(c) for c in data.get("cells", [])]
        return cls([], [], AllocatorConfig.model_validate(data.get("config", {})), cells=cells)

    def save(self, path: str | Path) -> None:
        """Write the state whole (temp file, then rename), so a kill never leaves half a file."""
        atomic_write_json(path, self.to_json(), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> BudgetAllocator:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
