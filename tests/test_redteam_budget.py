"""The bandit budget allocator over the policy × strategy matrix: every cell covered, attempts concentrated
where the yield is high, cost counted, and the state resumable from JSON."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from raipipe.models.base import Message
from raipipe.redteam import AttackOutcome, AttackRecord, AttackTurn, BudgetAllocator

POLICIES = ["privacy", "violence", "fraud"]
STRATEGIES = ["pair", "tap", "crescendo"]
HOT = ("fraud", "tap")


def simulate(allocator: BudgetAllocator, rounds: int, batch: int = 10, seed: int = 0) -> None:
    """Run proposals against a matrix whose HOT cell succeeds 60% of the time and the rest 3%."""
    rng = random.Random(seed)
    for _ in range(rounds):
        for policy, strategy in allocator.propose(batch):
            rate = 0.6 if (policy, strategy) == HOT else 0.03
            allocator.observe(policy, strategy, successes=int(rng.random() < rate), cost=2)


@pytest.mark.parametrize("method", ["thompson", "ucb"])
def test_allocator_concentrates_on_the_high_yield_cell_and_covers_every_cell(method):
    allocator = BudgetAllocator(POLICIES, STRATEGIES, {"method": method, "seed": 3})
    simulate(allocator, rounds=40)
    attempts = {cell: s.attempts for cell, s in allocator.cells.items()}
    assert sum(attempts.values()) == 400
    assert min(attempts.values()) >= 1
    assert attempts[HOT] > 0.5 * 400
    assert all(attempts[HOT] > 5 * n for cell, n in attempts.items() if cell != HOT)
    assert allocator.allocation(20).get(HOT, 0) >= 10  # the next batch goes there too


def test_a_fresh_matrix_is_covered_before_any_cell_repeats():
    allocator = BudgetAllocator(POLICIES, STRATEGIES, {"min_attempts": 1})
    first = allocator.propose(9)
    assert sorted(first) == sorted(allocator.cells)
    partial = allocator.propose(4)
    assert len(set(partial)) == 4  # thin coverage first, even when the batch is smaller than the matrix


def test_state_round_trips_and_resumes_with_the_same_proposals(tmp_path):
    allocator = BudgetAllocator(POLICIES, STRATEGIES, {"seed": 7})
    simulate(allocator, rounds=5)
    path = tmp_path / "allocator.json"
    allocator.save(path)
    resumed = BudgetAllocator.load(path)
    assert resumed.to_json() == allocator.to_json()
    assert resumed.propose(15) == allocator.propose(15)
    simulate(resumed, rounds=5, seed=1)
    simulate(allocator, rounds=5, seed=1)
    assert resumed.to_json() == allocator.to_json()


def test_cost_aware_ranking_prefers_the_cheaper_of_equal_yields():
    allocator = BudgetAllocator(["p"], ["cheap", "dear"], {"method": "ucb", "exploration": 0.0})
    allocator.observe("p", "cheap", attempts=20, successes=10, cost=20)
    allocator.observe("p", "dear", attempts=20, successes=10, cost=200)
    assert allocator.propose(5) == [("p", "cheap")] * 5
    blind = BudgetAllocator.from_json({**allocator.to_json(), "config": {"method": "ucb", "exploration": 0.0,
                                                                         "cost_aware": False}})
    assert set(blind.propose(1)) <= {("p", "cheap"), ("p", "dear")}


def record(outcome: AttackOutcome, seed_id: str, strategy: str, turns: int) -> AttackRecord:
    now = datetime.now(UTC)
    sent = [Message(role="user", content="a question")]
    return AttackRecord(id=f"{seed_id}-{strategy}-{outcome}", strategy=strategy, seed_id=seed_id,
                        seed_prompt="a question", chain_seed=0, chain=[], outcome=outcome, started_at=now,
                        finished_at=now, turns=[AttackTurn(index=i, sent=sent, response="ok", sent_at=now,
                                                           received_at=now) for i in range(turns)])


def test_records_count_into_cells_with_attacker_failures_apart():
    allocator = BudgetAllocator(["privacy"], ["crescendo"])
    allocator.observe_records([record(AttackOutcome.SUCCESS, "s1", "crescendo", 4),
                               record(AttackOutcome.PARTIAL, "s1", "crescendo", 2),
                               record(AttackOutcome.ATTACKER_FAILED, "s1", "crescendo", 0)], {"s1": "privacy"})
    stats = allocator.cells[("privacy", "crescendo")]
    assert (stats.attempts, stats.successes, stats.cost, stats.attacker_failures) == (2, 1, 6, 1)
    with pytest.raises(ValueError):
        allocator.observe("privacy", "crescendo", attempts=1, successes=2)
