"""Converters applied in order, with every step's name, parameters and seed recorded so it replays.

Each step gets its own seed derived from the chain seed, its position and its name; the derived seeds
(not the chain seed) are what a record stores, so replay does not depend on the derivation."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from raipipe.judges.base import Judge
from raipipe.models.base import ChatModel, Conversation, Message
from raipipe.redteam.converters.base import Converter, ModelConverter, make_converter


class ConverterSpec(BaseModel):
    """A converter by registry name and parameters: how configs name a chain step."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict = Field(default_factory=dict)


class ConverterStep(BaseModel):
    """One applied step: enough to rebuild it exactly."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict = Field(default_factory=dict)
    seed: int
    model_id: str | None = Field(default=None, description="attacker model, for converters that call one")
    model_output: str | None = Field(default=None, description="the attacker's output, reused on replay")


class Conversion(BaseModel):
    """The converted conversation and the steps that made it."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message]
    steps: list[ConverterStep]
    seed: int

    @property
    def text(self) -> str:
        """The last user message: the converted request itself."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")


def derive_seed(seed: int, index: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:{name}".encode()).hexdigest()
    return int(digest[:8], 16)


def as_conversation(prompt: str | Sequence[Message]) -> Conversation:
    return [Message(role="user", content=prompt)] if isinstance(prompt, str) else list(prompt)


class ConverterChain:
    """Several converters applied in order (the first one sees the original prompt)."""

    def __init__(self, converters: Sequence[Converter]):
        if not converters:
            raise ValueError("a converter chain needs at least one converter")
        self.converters = list(converters)

    @classmethod
    def from_specs(cls, specs: Sequence[ConverterSpec | str], model: ChatModel | None = None,
                   refusal_judge: Judge | None = None) -> ConverterChain:
        parsed = [ConverterSpec(name=s) if isinstance(s, str) else s for s in specs]
        return cls([make_converter(s.name, s.params, model, refusal_judge) for s in parsed])

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.converters]

    @property
    def requires_model(self) -> bool:
        return any(c.requires_model for c in self.converters)

    def plan(self, seed: int) -> list[ConverterStep]:
        """The steps this chain will record for `seed`, before any is run."""
        return [ConverterStep(name=c.name, params=c.params(), seed=derive_seed(seed, i, c.name))
                for i, c in enumerate(self.converters)]

    def apply(self, prompt: str | Sequence[Message], seed: int = 0) -> Conversion:
        """Convert a prompt (text or conversation). Raises AttackerRefusedError if an attacker model refuses."""
        steps = self.plan(seed)
        return Conversion(messages=self.run_steps(as_conversation(prompt), steps), steps=steps, seed=seed)

    def run_steps(self, conv: Conversation, steps: list[ConverterStep]) -> Conversation:
        """Apply each converter with its step's seed, filling in model ids and outputs as they happen."""
        for converter, step in zip(self.converters, steps, strict=True):
            try:
                conv = converter.convert(conv, random.Random(step.seed))
            finally:  # a refused rewrite is recorded too: it is the evidence of the attacker's failure
                if isinstance(converter, ModelConverter) and converter.last_output is not None:
                    step.model_output = converter.last_output
                    step.model_id = converter.model.model_id if converter.model else step.model_id
        return conv

    def decode(self, text: str) -> str:
        """Undo a chain of reversible converters (last step first)."""
        for c in reversed(self.converters):
            text = c.decode(text)
        return text


def replay_steps(steps: Sequence[ConverterStep], prompt: str | Sequence[Message],
                 model: ChatModel | None = None, use_recorded: bool = True) -> Conversation:
    """Rebuild a conversion from recorded steps. With `use_recorded`, attacker outputs come from the record
    (exact, no model needed); otherwise `model` is asked again (e.g. for a benign twin of the prompt)."""
    # a step that called no model on record (e.g. a language wrap used bare) is not given one now either
    converters = [make_converter(s.name, s.params, model if s.model_output is not None else None) for s in steps]
    for c, s in zip(converters, steps, strict=True):
        if isinstance(c, ModelConverter) and use_recorded:
            c.use_recorded(s.model_output)
    fresh = [s.model_copy(deep=True) for s in steps]
    return ConverterChain(converters).run_steps(as_conversation(prompt), fresh)
