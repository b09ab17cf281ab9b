"""Attack strategies: each turns seed prompts into AttackRecords against a target model.

Built in: the converter sweep (the baseline), and the adaptive strategies whose prompts an attacker model
writes — PAIR-style refinement, TAP-style tree search, Crescendo-style multi-turn escalation and
competing or collaborating attacker agents."""

from raipipe.redteam.strategies.adaptive import (
    AdaptiveConfig,
    AdaptiveStrategy,
    AttackerSettings,
    ScoreKind,
    ScorerConfig,
)
from raipipe.redteam.strategies.base import (
    STRATEGIES,
    BudgetExhaustedError,
    QueryBudget,
    Strategy,
    StrategyConfig,
    load_strategy,
    register_strategy,
)
from raipipe.redteam.strategies.crescendo import CrescendoAttack, CrescendoConfig
from raipipe.redteam.strategies.multi_agent import MultiAgentAttack, MultiAgentConfig
from raipipe.redteam.strategies.pair import PairAttack, PairConfig
from raipipe.redteam.strategies.sweep import ConverterSweep, SweepConfig
from raipipe.redteam.strategies.tap import TapAttack, TapConfig

__all__ = [
    "STRATEGIES",
    "AdaptiveConfig",
    "AdaptiveStrategy",
    "AttackerSettings",
    "BudgetExhaustedError",
    "ConverterSweep",
    "CrescendoAttack",
    "CrescendoConfig",
    "MultiAgentAttack",
    "MultiAgentConfig",
    "PairAttack",
    "PairConfig",
    "QueryBudget",
    "ScoreKind",
    "ScorerConfig",
    "Strategy",
    "StrategyConfig",
    "SweepConfig",
    "TapAttack",
    "TapConfig",
    "load_strategy",
    "register_strategy",
]
