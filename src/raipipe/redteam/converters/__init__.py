"""Converters: small, seeded prompt transformations that stack into chains. One class per converter,
registered by name; `CONVERTERS.all()` lists them (built-ins plus the `raipipe.converters` entry points)."""

from raipipe.redteam.converters.base import (
    CONVERTERS,
    AttackerRefusedError,
    Converter,
    ModelConverter,
    PayloadConverter,
    TemplateConverter,
    make_converter,
    register_converter,
)
from raipipe.redteam.converters.chain import (
    Conversion,
    ConverterChain,
    ConverterSpec,
    ConverterStep,
    replay_steps,
)

__all__ = [
    "CONVERTERS",
    "AttackerRefusedError",
    "Conversion",
    "Converter",
    "ConverterChain",
    "ConverterSpec",
    "ConverterStep",
    "ModelConverter",
    "PayloadConverter",
    "TemplateConverter",
    "make_converter",
    "register_converter",
    "replay_steps",
]
