"""Red-teaming: converters disguise a seed request, strategies send the result to a target model and
judge the answer, and every attempt becomes an AttackRecord that replays exactly.

Extend it with one class: a converter (`@register_converter`, entry-point group `raipipe.converters`)
or an attack strategy (`@register_strategy`, group `raipipe.attacks`)."""

from raipipe.redteam.converters import (
    CONVERTERS,
    AttackerRefusedError,
    Conversion,
    Converter,
    ConverterChain,
    ConverterSpec,
    ConverterStep,
    ModelConverter,
    TemplateConverter,
    register_converter,
)
from raipipe.redteam.records import (
    AttackOutcome,
    AttackRecord,
    AttackTurn,
    JudgeVerdict,
    read_records,
    replay,
    write_records,
)
from raipipe.redteam.strategies import (
    STRATEGIES,
    ConverterSweep,
    QueryBudget,
    Strategy,
    StrategyConfig,
    SweepConfig,
    load_strategy,
    register_strategy,
)

__all__ = [
    "CONVERTERS",
    "STRATEGIES",
    "AttackOutcome",
    "AttackRecord",
    "AttackTurn",
    "AttackerRefusedError",
    "Conversion",
    "Converter",
    "ConverterChain",
    "ConverterSpec",
    "ConverterStep",
    "ConverterSweep",
    "JudgeVerdict",
    "ModelConverter",
    "QueryBudget",
    "Strategy",
    "StrategyConfig",
    "SweepConfig",
    "TemplateConverter",
    "load_strategy",
    "read_records",
    "register_converter",
    "register_strategy",
    "replay",
    "write_records",
]
