"""Attack strategies: each turns seed prompts into AttackRecords against a target model."""

from raipipe.redteam.strategies.base import (
    STRATEGIES,
    BudgetExhaustedError,
    QueryBudget,
    Strategy,
    StrategyConfig,
    load_strategy,
    register_strategy,
)
from raipipe.redteam.strategies.sweep import ConverterSweep, SweepConfig

__all__ = [
    "STRATEGIES",
    "BudgetExhaustedError",
    "ConverterSweep",
    "QueryBudget",
    "Strategy",
    "StrategyConfig",
    "SweepConfig",
    "load_strategy",
    "register_strategy",
]
