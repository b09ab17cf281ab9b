"""What a converter is: one small pydantic class that rewrites a prompt, deterministically given a seed.

A converter's fields are its parameters (so they are typed, saved with every attack record and
replayed); its `name` is the registry key. Most converters rewrite the text of the last user message
(`transform`); a few build a multi-message conversation (`convert`). Converters that wrap a request
never look at its content when choosing their wrapper, so a benign look-alike gets the same wrapper
under the same seed. Converters that call an LLM (paraphrase, translation) subclass `ModelConverter`,
which checks the attacker's output for refusals: an attacker that will not attack is its failure,
never evidence that the target is safe."""

from __future__ import annotations

import random
from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from raipipe.judges.base import Judge, JudgeInput, Verdict
from raipipe.judges.opener import opens_with_refusal
from raipipe.models.base import ChatModel, Conversation, GenerationParams, Message
from raipipe.registry import Registry


class AttackerRefusedError(RuntimeError):
    """The attacker LLM declined (or returned nothing) when asked to rewrite a prompt."""

    def __init__(self, converter: str, output: str, reason: str):
        super().__init__(f"attacker refused in converter {converter!r} ({reason}): {output[:120]!r}")
        self.converter, self.output, self.reason = converter, output, reason


def last_user_index(conv: Sequence[Message]) -> int:
    for i in range(len(conv) - 1, -1, -1):
        if conv[i].role == "user":
            return i
    raise ValueError("the conversation has no user message to convert")


def with_last_user(conv: Sequence[Message], text: str) -> Conversation:
    """A copy of the conversation whose last user message reads `text`."""
    i = last_user_index(conv)
    return [*conv[:i], Message(role="user", content=text), *conv[i + 1:]]


class Converter(BaseModel, ABC):
    """Transforms a prompt. Subclass, set `name`, implement `transform` (or `convert` for several messages),
    and decorate with @register_converter. Randomness must come only from the `rng` passed in."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: ClassVar[str] = ""
    reversible: ClassVar[bool] = False  # if True, `decode` returns the original text
    requires_model: ClassVar[bool] = False

    def convert(self, conv: Conversation, rng: random.Random) -> Conversation:
        """Rewrite the conversation; by default only the last user message's text."""
        return with_last_user(conv, self.transform(conv[last_user_index(conv)].content, rng))

    def transform(self, text: str, rng: random.Random) -> str:
        raise NotImplementedError(f"{type(self).__name__} implements neither transform nor convert")

    def decode(self, text: str) -> str:
        """The original text back from a converted one (only for `reversible` converters)."""
        raise NotImplementedError(f"{self.name} is not reversible")

    def params(self) -> dict:
        return self.model_dump(mode="json")


class TemplateConverter(Converter):
    """Wraps the request in one of a few templates, each with a `{prompt}` slot. The template is drawn
    before anything else, so a benign twin gets the same one under the same seed."""

    templates: ClassVar[tuple[str, ...]] = ()
    template: int | None = Field(default=None, ge=0, description="fix one template instead of drawing it")

    def pick(self, rng: random.Random) -> str:
        k = rng.randrange(len(self.templates)) if self.template is None else self.template
        return self.templates[k % len(self.templates)]

    def transform(self, text: str, rng: random.Random) -> str:
        return self.pick(rng).replace("{prompt}", text)


class PayloadConverter(Converter):
    """An encoding: one instruction line, a blank line, then the encoded payload. Reversible."""

    intros: ClassVar[tuple[str, ...]] = ()
    reversible: ClassVar[bool] = True

    def encode(self, text: str, rng: random.Random) -> str:
        raise NotImplementedError

    def unencode(self, payload: str) -> str:
        raise NotImplementedError

    def transform(self, text: str, rng: random.Random) -> str:
        intro = self.intros[rng.randrange(len(self.intros))]
        return f"{intro}\n\n{self.encode(text, rng)}"

    def decode(self, text: str) -> str:
        return self.unencode(text.split("\n\n", 1)[1])


class ModelConverter(Converter):
    """A converter that asks an attacker LLM to rewrite the request. The model's output is recorded, so a
    record replays exactly without the model; a refusing attacker raises AttackerRefusedError."""

    requires_model: ClassVar[bool] = True
    temperature: float = Field(default=0.0, ge=0.0)
    max_new_tokens: int = Field(default=256, ge=1)
    model: ChatModel | None = Field(default=None, exclude=True, repr=False)
    refusal_judge: Judge | None = Field(default=None, exclude=True, repr=False,
                                        description="besides the refusal-opener rule, flags attacker refusals")
    _recorded: str | None = PrivateAttr(default=None)
    _last_output: str | None = PrivateAttr(default=None)

    def use_recorded(self, output: str | None) -> None:
        """Replay: answer with this earlier model output instead of calling the model."""
        self._recorded = output

    def convert(self, conv: Conversation, rng: random.Random) -> Conversation:
        self._last_output = None  # so a step that did not call the model records no output
        return super().convert(conv, rng)

    @property
    def last_output(self) -> str | None:
        return self._last_output

    def ask(self, instruction: str, text: str, rng: random.Random) -> str:
        """The attacker's rewrite of `text` under `instruction`, checked for refusal."""
        seed = rng.randrange(2**31)  # drawn even on replay, so later draws stay in step
        if self._recorded is not None:
            out = self._recorded
        elif self.model is None:
            raise ValueError(f"converter {self.name!r} needs an attacker model (none given, nothing recorded)")
        else:
            params = GenerationParams(temperature=self.temperature, max_new_tokens=self.max_new_tokens, seed=seed)
            conv = [Message(role="system", content=instruction), Message(role="user", content=text)]
            out = self.model.generate([conv], params)[0][0].strip()
        self._last_output = out
        self.check_attacker(text, out)
        return out

    def check_attacker(self, text: str, out: str) -> None:
        if not out.strip():
            raise AttackerRefusedError(self.name, out, "empty output")
        if opens_with_refusal(out):
            raise AttackerRefusedError(self.name, out, "opens with a refusal")
        if self.refusal_judge is not None:
            verdict = self.refusal_judge.judge([JudgeInput(prompt=text, response=out)])[0].verdict
            if verdict is Verdict.REFUSE:
                raise AttackerRefusedError(self.name, out, f"refusal judge {self.refusal_judge.judge_id}")


def _builtin_converters() -> None:
    # local: the built-in converters import this module (import cycle)
    from raipipe.redteam.converters import encoding, framing, rewrite, structure  # noqa: F401  (built-ins)


CONVERTERS: Registry[Converter] = Registry("converter", "raipipe.converters", _builtin_converters)


def register_converter(cls: type[Converter]) -> type[Converter]:
    """Class decorator: `@register_converter class Mine(TemplateConverter): name = 'mine'` adds a converter."""
    return CONVERTERS.register(cls)


def make_converter(name: str, params: dict | None = None, model: ChatModel | None = None,
                   refusal_judge: Judge | None = None) -> Converter:
    """A registered converter by name, with its parameters (and the attacker model, if it uses one)."""
    cls = CONVERTERS.get(name)
    extra = {"model": model, "refusal_judge": refusal_judge} if issubclass(cls, ModelConverter) else {}
    return cls(**(params or {}), **extra)
