"""Which (strategy, seed) units a run attacks when the budget allocator decides, not the full product.

Earlier runs (their `seeds.jsonl` and `attacks.jsonl`) fill the policy × strategy coverage matrix; the
allocator proposes where the next attempts go (thin cells first, then high yield per query); each proposed
cell becomes one unit: the next seed of that policy that the strategy has not attacked yet (in the history
or earlier in this plan). A cell with no such seed left drops out and the rest is proposed again. The plan
is written to the run folder once, so a resumed run attacks exactly the same units."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.records import PromptRecord
from raipipe.errors import UsageError
from raipipe.fileio import atomic_write_json
from raipipe.redteam.budget import AllocatorConfig, BudgetAllocator, Cell
from raipipe.redteam.run_state import ATTACKS_FILE, read_attacks_tolerant
from raipipe.redteam.seeds import read_seeds

PLAN_FILE = "plan.json"
NO_POLICY = "(no policy)"


class PlannedUnit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str
    seed_id: str
    policy: str


class Plan(BaseModel):
    """The units a run attacks, and the coverage they were chosen from."""

    model_config = ConfigDict(extra="forbid")
    attempts: int = Field(ge=1, description="units asked for")
    history: list[str] = Field(default_factory=list, description="run folders whose attempts were counted")
    units: list[PlannedUnit]
    exhausted: list[str] = Field(default_factory=list, description="'policy / strategy' cells with no seed left")
    coverage: dict = Field(description="the allocator's state before this run (BudgetAllocator.to_json)")


def policy_of(seed: PromptRecord) -> str:
    return seed.policy_id or NO_POLICY


def history_allocator(strategies: Sequence[str], seeds: Sequence[PromptRecord], history: Sequence[Path],
                      config: AllocatorConfig) -> tuple[BudgetAllocator, set[tuple[str, str]]]:
    """The allocator over this run's policies × strategies with the history's attempts counted, and the
    (strategy, seed id) units the history already attacked."""
    policies = sorted({policy_of(s) for s in seeds})
    allocator = BudgetAllocator(policies, strategies, config)
    done: set[tuple[str, str]] = set()
    for run_dir in history:
        if not (run_dir / ATTACKS_FILE).is_file():
            raise UsageError(f"--history {run_dir}: no {ATTACKS_FILE} there", hint="give a red-team run folder")
        policies_by_seed: defaultdict[str, str] = defaultdict(lambda: NO_POLICY)
        policies_by_seed.update((s.id, policy_of(s)) for s in [*read_seeds(run_dir), *seeds])
        records = [r for r in read_attacks_tolerant(run_dir / ATTACKS_FILE) if r.strategy in strategies]
        allocator.observe_records(records, policies_by_seed)
        done |= {(r.strategy, r.seed_id) for r in records}
    return allocator, done


def make_plan(strategies: Sequence[str], seeds: Sequence[PromptRecord], attempts: int, history: Sequence[Path],
              config: AllocatorConfig | None = None) -> Plan:
    """`attempts` units over `seeds` × `strategies`, placed by the allocator (fewer if the seeds run out)."""
    allocator, done = history_allocator(strategies, seeds, history, config or AllocatorConfig())
    coverage = allocator.to_json()
    by_policy: dict[str, list[PromptRecord]] = defaultdict(list)
    for s in seeds:
        by_policy[policy_of(s)].append(s)
    units: list[PlannedUnit] = []
    exhausted: list[str] = []
    while len(units) < attempts and allocator.cells:  # again for what exhausted cells could not take
        for cell in allocator.propose(attempts - len(units)):
            if cell not in allocator.cells:
                continue
            seed = _next_seed(cell, by_policy, done)
            if seed is None:
                del allocator.cells[cell]
                exhausted.append(f"{cell[0]} / {cell[1]}")
                continue
            done.add((cell[1], seed.id))
            units.append(PlannedUnit(strategy=cell[1], seed_id=seed.id, policy=cell[0]))
    return Plan(attempts=attempts, history=[str(h) for h in history], units=units, exhausted=exhausted,
                coverage=coverage)


def _next_seed(cell: Cell, by_policy: dict[str, list[PromptRecord]],
               done: set[tuple[str, str]]) -> PromptRecord | None:
    policy, strategy = cell
    return next((s for s in by_policy.get(policy, []) if (strategy, s.id) not in done), None)


def load_or_make_plan(out_dir: Path, strategies: Sequence[str], seeds: Sequence[PromptRecord], attempts: int,
                      history: Sequence[Path], config: AllocatorConfig | None = None) -> Plan:
    """The plan of an interrupted run in `out_dir`, or a new one written there before any attack."""
    path = out_dir / PLAN_FILE
    if path.is_file():
        return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))
    plan = make_plan(strategies, seeds, attempts, history, config)
    if not plan.units:
        raise UsageError(f"the allocator found no (strategy, seed) unit left to attack: every strategy has "
                         f"attacked every seed in the history runs ({len(history)})",
                         hint="give more seeds, other strategies, or fewer --history runs")
    atomic_write_json(path, plan.model_dump(mode="json"), indent=2)
    return plan


def allocation_counts(plan: Plan) -> dict[str, int]:
    """Units per 'policy / strategy' cell, most first (for the summary)."""
    return dict(Counter(f"{u.policy} / {u.strategy}" for u in plan.units).most_common())
